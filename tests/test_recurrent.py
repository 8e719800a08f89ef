"""``edge.runtime.recurrent.unroll`` (the host loop over a ConvLSTM step engine, shared by the in-process runtime
and the served window) against PyTorch's own ``nn.LSTMCell``: a ConvLSTM with 1x1 convolutions is an LSTM per
pixel, so the numpy step engine of the fixtures, unrolled from zero state, must give torch's cell state."""
import numpy as np
import pytest
import torch

from edge.runtime.recurrent import unroll, zero_state
from fixtures.numpy_engines import NumpyStep


def torch_reference(step: NumpyStep, feats: np.ndarray) -> np.ndarray:
    """Logits of the last step: torch.nn.LSTMCell per pixel (gate order i, f, g, o; ours is i, f, o, g)."""
    hdim = step.hidden
    order = np.r_[0:hdim, hdim:2 * hdim, 3 * hdim:4 * hdim, 2 * hdim:3 * hdim]
    cell = torch.nn.LSTMCell(feats.shape[2], hdim).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(step.wx[order], dtype=torch.float64))
        cell.weight_hh.copy_(torch.tensor(step.wh[order], dtype=torch.float64))
        cell.bias_ih.copy_(torch.tensor(step.b[order], dtype=torch.float64))
        cell.bias_hh.zero_()
        b, t, c, gh, gw = feats.shape
        x = torch.tensor(feats, dtype=torch.float64).permute(0, 1, 3, 4, 2).reshape(b, t, gh * gw, c)
        h = torch.zeros(b * gh * gw, hdim, dtype=torch.float64)
        cs = torch.zeros_like(h)
        for k in range(t):
            h, cs = cell(x[:, k].reshape(-1, c), (h, cs))
        pooled = cs.reshape(b, gh * gw, hdim).mean(1).numpy()
    return pooled @ step.wl.T.astype(np.float64) + step.bl


@pytest.mark.parametrize("batch,steps", [(1, 1), (1, 8), (3, 5)])
def test_unroll_equals_torch_lstm_cell(rng, batch, steps):
    step = NumpyStep(seed=int(rng.integers(1 << 30)))
    feats = rng.standard_normal((batch, steps, 8, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(unroll(step, feats), torch_reference(step, feats), rtol=1e-4, atol=1e-4)


def test_order_matters_and_state_starts_at_zero(rng):
    step = NumpyStep()
    feats = rng.standard_normal((2, 6, 8, 7, 7)).astype(np.float32)
    assert not np.allclose(unroll(step, feats), unroll(step, feats[:, ::-1]))   # oldest first, not a bag
    z = zero_state(step, "c", 2, feats[:, 0])
    assert z.shape == (2, 6, 7, 7) and z.dtype == np.float32 and not z.any()


@pytest.mark.parametrize("shape", [(8, 7, 7), (1, 8, 7, 7), (1, 0, 8, 7, 7)])
def test_unroll_rejects_what_is_not_a_window(shape):
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        unroll(NumpyStep(), np.zeros(shape, np.float32))
