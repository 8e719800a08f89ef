"""The numpy test engines of tests/fixtures/numpy_engines.py compute what they claim."""
import numpy as np

from fixtures.numpy_engines import NumpyEncoder, NumpyStep, _sigmoid


def test_numpy_step_matches_gate_algebra(rng):
    """The test ConvLSTM step at one pixel equals the written-out gate equations."""
    step = NumpyStep()
    x = rng.standard_normal((2, 8, 7, 7)).astype(np.float32)
    h = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    c = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    out = step.run({"features": x, "h": h, "c": c})
    n, y, xx = 1, 3, 5
    z = step.wx @ x[n, :, y, xx] + step.wh @ h[n, :, y, xx] + step.b
    i, f, o, g = z[:6], z[6:12], z[12:18], z[18:]
    c2 = _sigmoid(f) * c[n, :, y, xx] + _sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(out["c_next"][n, :, y, xx], c2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["h_next"][n, :, y, xx], _sigmoid(o) * np.tanh(c2), rtol=1e-5, atol=1e-5)


def test_numpy_encoder_batch_equals_single(rng):
    enc = NumpyEncoder()
    rgb = rng.uniform(0, 255, (3, 3, 56, 56)).astype(np.float32)
    flow = rng.uniform(-1, 1, (3, 2, 56, 56)).astype(np.float32)
    both = enc.run({"rgb": rgb, "flow": flow})
    one = enc.run({"rgb": rgb[1:2], "flow": flow[1:2]})
    np.testing.assert_allclose(both["features"][1:2], one["features"], rtol=1e-6)
    assert np.allclose(both["attention"].sum(axis=(1, 2, 3)), 1.0)
