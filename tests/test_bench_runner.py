"""The benchmark runner on small real engines: a PyTorch linear classifier (TorchEngine) as the reference,
the same weights as ONNX in onnxruntime, and a corrupted copy that must fail its tolerance."""
import time

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edge.bench import runner
from edge.bench.baseline import plain_engine
from edge.runtime.record import recording
from edge.bench.tasks import TaskResult
from edge.models.torch_engine import TorchEngine
from edge.contract import TensorSpec
from edge.runtime.base import Engines

D, K = 16, 5


def linear_onnx(path, w: np.ndarray, b: np.ndarray):
    g = helper.make_graph(
        [helper.make_node("Gemm", ["features", "W", "B"], ["logits"], transB=1)], "toy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", D])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", K])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), path)
    return plain_engine("head", path)


class ClipTask:
    """Stand-in task (the real ones need exported models; test_bench_e2e runs them): accuracy of
    argmax(logits) on fixed inputs, in units of 30 inputs."""
    description = "toy inputs"
    units = 4

    def __init__(self, x, labels):
        self.x, self.labels = x, labels

    def run_unit(self, engines, u):
        preds, times = [], []
        for row in self.x[u * 30:(u + 1) * 30]:
            t0 = time.perf_counter()
            preds.append(int(np.argmax(engines["head"].run({"features": row[None]})["logits"])))
            times.append(time.perf_counter() - t0)
        return preds, times

    def finish(self, partials):
        preds = [k for p, _ in partials for k in p]
        times = [t for _, ts in partials for t in ts]
        return TaskResult({"accuracy": float(np.mean(np.array(preds) == self.labels))}, times, preds)

    def agreement(self, result, ref):
        return {"prediction_agreement": float(np.mean(np.array(result.outputs) == np.array(ref.outputs)))}


@pytest.fixture
def setup(tmp_path, rng):
    torch.manual_seed(int(rng.integers(1 << 31)))
    lin = torch.nn.Linear(D, K).eval()
    w, b = lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()
    spec_in, spec_out = [TensorSpec("features", ("batch", D))], [TensorSpec("logits", ("batch", K))]
    ref = Engines({"head": TorchEngine("head", lin, spec_in, spec_out)}, None, "pytorch")
    good = Engines({"head": linear_onnx(tmp_path / "good.onnx", w, b)}, None)
    noisy_w = w + rng.normal(0, 3 * np.abs(w).mean(), w.shape).astype(np.float32)
    bad = Engines({"head": linear_onnx(tmp_path / "bad.onnx", noisy_w, b)}, None, precision="int8")
    x = rng.normal(size=(120, D)).astype(np.float32)
    labels = np.argmax(x @ w.T + b, 1)            # the reference is right by construction
    return ref, good, bad, ClipTask(x, labels)


def settings(samples=120):
    return runner.Settings(threads=1, warmup_s=0.0, min_s=0.05, min_runs=5, samples=samples)


def test_rows_numerics_speed_verdict(setup):
    ref, good, bad, task = setup
    subjects = [runner.Subject("pytorch", ref, "pytorch", "fp32", reference=True),
                runner.Subject("ort-fp32", good, "onnxruntime", "fp32"),
                runner.Subject("broken-int8", bad, "onnxruntime", "int8")]
    sec = runner.bench_model("toy", subjects, task, settings(), log=lambda m: None)
    r_ref, r_good, r_bad = sec["rows"]
    assert sec["samples"] == {"head": 120}               # every recorded input replayed
    assert r_ref["verdict"]["status"] == "ref" and r_ref["task"]["accuracy"] == 1.0
    # identical weights: tiny error, same decisions everywhere
    assert r_good["numerics"]["max_abs_err"] < 1e-4 and r_good["numerics"]["min_cosine"] > 0.9999
    assert r_good["numerics"]["top1_agreement"] == 1.0 and r_good["task"]["prediction_agreement"] == 1.0
    assert r_good["verdict"]["status"] == "pass" and r_good["delta"]["accuracy"] == 0.0
    # corrupted weights: decisions change, int8 tolerance (97 %) is broken
    assert r_bad["numerics"]["top1_agreement"] < 0.97
    # labels count exactly, on identical inputs and end to end per task item
    assert r_bad["numerics"]["decision_agreement"] == min(r_bad["numerics"]["top1_agreement"],
                                                          r_bad["task"]["prediction_agreement"])
    assert r_bad["verdict"]["status"] == "fail"
    assert r_bad["delta"]["accuracy"] == pytest.approx(r_bad["task"]["accuracy"] - 1.0)
    assert runner.overall({"toy": sec}) == "fail"
    for r in sec["rows"]:
        st = r["speed"]["networks"]["head"]
        assert st["runs"] >= 5 and st["min_ms"] <= st["median_ms"] <= st["p99_ms"] <= st["max_ms"]
        assert r["speedup"]["head"] == pytest.approx(r_ref["speed"]["networks"]["head"]["median_ms"]
                                                     / st["median_ms"])
        assert r["speed"]["end_to_end"]["runs"] == 120
    assert r_ref["speedup"]["head"] == pytest.approx(1.0)


def test_without_task_uses_fallback_inputs(setup, rng):
    ref, good, _, _ = setup
    x = rng.normal(size=(8, D)).astype(np.float32)
    subjects = [runner.Subject("pytorch", ref, "pytorch", "fp32", reference=True),
                runner.Subject("ort-fp32", good, "onnxruntime", "fp32")]
    sec = runner.bench_model("toy", subjects, None, settings(), lambda n: [{"features": x}],
                             log=lambda m: None)
    row = sec["rows"][1]
    assert row["numerics"]["top1_agreement"] == 1.0 and "task" not in row
    assert row["verdict"]["status"] == "pass" and "end_to_end" not in row["speed"]
    assert sec["notes"] and runner.overall({"toy": sec}) == "pass"
    with pytest.raises(ValueError, match="no inputs"):
        runner.bench_model("toy", subjects, None, settings(), lambda n: [], log=lambda m: None)
    with pytest.raises(ValueError, match="reference"):
        runner.bench_model("toy", subjects[1:], None, settings(), log=lambda m: None)


def test_recorder_keeps_an_even_sample(setup, rng):
    ref = setup[0]
    rec_engines, rec = recording(ref, limit=10)
    xs = rng.normal(size=(1000, 1, D)).astype(np.float32)
    for x in xs:
        rec_engines["head"].run({"features": x})
    idx = rec["head"].call_indices
    assert len(idx) == 10 and idx[0] == 0 and idx[-1] >= 900         # spread over the whole run
    assert all(np.array_equal(f["features"], xs[i]) for f, i in zip(rec["head"].feeds, idx))


def test_engine_that_cannot_run_is_a_failed_row(setup, tmp_path):
    ref, good, _, task = setup
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["logits"])], "wrong_io",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", D])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", D])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), tmp_path / "w.onnx")
    wrong = Engines({"head": plain_engine("head", tmp_path / "w.onnx")}, None)
    subjects = [runner.Subject("pytorch", ref, "pytorch", "fp32", reference=True),
                runner.Subject("wrong-io", wrong, "onnxruntime", "fp32"),
                runner.Subject("ort-fp32", good, "onnxruntime", "fp32")]
    sec = runner.bench_model("toy", subjects, task, settings(20), log=lambda m: None)
    bad_row, good_row = sec["rows"][1:]
    assert bad_row["verdict"]["status"] == "fail" and "missing inputs" in bad_row["error"]
    assert good_row["verdict"]["status"] == "pass"             # the other rows still ran
    from edge.bench.report import markdown
    line = next(ln for ln in markdown({"models": {"toy": sec}}).splitlines() if ln.startswith("| wrong-io"))
    assert "fail: did not run" in line
