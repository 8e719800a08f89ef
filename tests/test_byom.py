"""Bring your own model: the worked example (examples/byom: a tracker with its own taps, 7x7 pooling and 128
candidates; a classifier with a 4-frame window and 16 hidden channels) exported, built, run and benched
against its own PyTorch; every violation of the model contract is one line before anything is exported;
checkpoints from common training setups load; our ops as a public PyTorch API."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import edge
from edge.contract import ContractError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "byom"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import walkthrough as w
        out = tmp_path_factory.mktemp("byom")
        return out, w.main(["--out", str(out), "--frames", "30"])
    finally:
        sys.path.remove(str(EXAMPLES))


def test_example_models_export_build_run_and_bench(walkthrough):
    out, res = walkthrough
    s = res["summary"].streams[0]
    assert s.processed == 30 and (out / "run.mp4").is_file() and s.events.get("track_init") == 1
    rep = res["report"].report
    assert res["report"].status == "pass" and set(rep["models"]) == {"tracker", "classifier"}
    for model, sec in rep["models"].items():
        eng = next(r for r in sec["rows"] if r["name"] == f"my_{model}")
        assert eng["numerics"]["top1_agreement"] == 1.0, eng["numerics"]
        assert eng["verdict"]["status"] == "pass"


def test_example_tracker_runs_its_own_candidate_count(walkthrough):
    from edge.tracking import SiameseTracker
    _, res = walkthrough
    engines = res["engines"]["my_tracker"].load()
    trk = SiameseTracker(engines)
    assert trk.params.num_candidates == 128 and trk.params.lost_threshold == 0.5 and trk.size == 96
    assert engines.manifest.networks["search"].input("rois").shape[0] == "rois"


def _module(tmp_path: Path, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    return name


BASE = '''
import torch
from torch import nn
from edge import ops
from edge.models.registry import NetworkSpec

class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 2, 1)
        self.pool = ops.RoiPool((2, 2), 0.5)
    def embed(self, image, rois):
        return nn.functional.normalize(self.pool(self.conv(image), rois).flatten(1), dim=1)

class T(nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, image, box): return self.m.embed(image, box)

class S(nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, image, rois, template): return self.m.embed(image, rois) @ template.reshape(-1, 1)

def build_bad(weights=None):
    return M().eval()

def networks(m):
    img, rois = torch.rand(1, 3, 32, 32) * 255, torch.tensor([[0., 2, 2, 20, 20]] * 4)
    t = m.embed(img, rois[:1])
    return {NETS}

def config(m):
    return {CONFIG}
'''
NETS = ('{"template": NetworkSpec(T(m), {"image": img, "box": rois[:1]}, ["embedding"]), '
        '"search": NetworkSpec(S(m), {"image": img, "rois": rois, "template": t}, ["scores"])}')
CONFIG = '{"task": "tracking", "crop_size": 32}'


@pytest.mark.parametrize("nets,config,needle", [
    (NETS.replace('"search": NetworkSpec(S(m), {"image": img, "rois": rois, "template": t}, ["scores"])', ""),
     CONFIG, "a tracker needs network(s) ['search']"),
    (NETS.replace('"rois": rois, "template": t}', '"rois": rois, "template": t, "scale": t}')
         .replace("def forward(self, image, rois, template)", "def forward(self, image, rois, template, scale)"),
     CONFIG, "takes input(s) ['scale'] that the tracker runtime does not feed"),
    (NETS.replace('{"image": img, "box": rois[:1]}', '{"img": img, "box": rois[:1]}'), CONFIG,
     "has no tensor(s) ['image']"),
    (NETS, '{"task": "tracking", "crop_size": -32}', "crop_size must be a positive int"),
    (NETS, '{"task": "tracking", "crop_size": 32, "tracker_params": 3}', "tracker_params must be an object"),
])
def test_contract_violations_are_one_line_before_export(tmp_path, nets, config, needle):
    body = BASE.replace("{NETS}", nets).replace("{CONFIG}", config)
    if "scale" in nets:
        body = body.replace("def forward(self, image, rois, template): return",
                            "def forward(self, image, rois, template, scale): return")
    name = _module(tmp_path, f"bad_{abs(hash(needle)) % 10**8}", body)
    with pytest.raises(ContractError) as e:
        edge.export(name, tmp_path / "out")
    msg = str(e.value)
    assert "\n" not in msg and needle in msg and msg.startswith(f"model {name}") and "Bring your own model" in msg
    assert not (tmp_path / "out").exists()                     # nothing written


def test_module_without_a_builder_and_cli_exit_code(tmp_path):
    name = _module(tmp_path, "no_builder", "def networks(m): return {}\ndef config(m): return {}\n")
    p = subprocess.run([sys.executable, "-m", "edge", "export", name, "-o", str(tmp_path / "o")], capture_output=True,
                       text=True, timeout=120, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "has no build_<model>() function" in p.stderr


def test_classifier_config_out_of_range(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import my_classifier
        model = my_classifier.build_my_classifier()
        from edge.models import registry
        cfg = dict(my_classifier.config(model), clip_len=0)
        with pytest.raises(ContractError, match="clip_len must be an int >= 1, got 0"):
            registry.check_model(my_classifier, model, my_classifier.networks(model), cfg)
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "dataparallel"])
def test_checkpoints_from_common_training_setups_load(tmp_path, wrap, rng):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import my_tracker
    finally:
        sys.path.remove(str(EXAMPLES))
    trained = my_tracker.MyTracker()
    with torch.no_grad():
        for p in trained.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32)))
    sd = trained.state_dict()
    obj = {"plain": sd, "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd, "optimizer": {}},
           "dataparallel": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    got = my_tracker.build_my_tracker(str(path))
    for k, v in sd.items():
        torch.testing.assert_close(got.state_dict()[k], v, rtol=0, atol=0)


def test_checkpoint_with_pickled_objects_is_refused_safely(tmp_path):
    from edge.models.checkpoint import load_state_dict
    buf = io.BytesIO()
    torch.save({"model": torch.nn.Linear(2, 2)}, buf)          # a whole module: needs unsafe unpickling
    (tmp_path / "w.pt").write_bytes(buf.getvalue())
    with pytest.raises(ValueError) as e:
        load_state_dict(tmp_path / "w.pt")
    msg = str(e.value)
    assert "\n" not in msg and "save model.state_dict()" in msg and "weights_only=False" not in msg


def test_ops_are_a_public_api_and_export_with_plain_torch(tmp_path, rng):
    """``edge.ops`` in a user's module, exported by the documented helper: one ``edge.ops`` node each, and
    onnxruntime (which inlines the functions) agrees with PyTorch; RoiPool equals onnxruntime's MaxRoiPool."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = edge.ops.ConvLSTMCell(3, 4)

        def forward(self, x, rois, h, c):
            y = edge.ops.roi_pool(x, rois, (3, 3), 0.5)
            return (y,) + self.cell(torch.nn.functional.avg_pool2d(x, 2), h, c)

    x = torch.from_numpy(rng.standard_normal((1, 3, 16, 16)).astype(np.float32))
    rois = torch.tensor([[0.0, 1, 2, 20, 25], [0, 0, 0, 31, 31]])
    h = torch.from_numpy(rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    c = torch.from_numpy(rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    net = Net().eval()
    m = edge.ops.export_onnx(net, (x, rois, h, c), tmp_path / "n.onnx", ["x", "rois", "h", "c"], ["y", "h2", "c2"])
    assert sorted(n.op_type for n in m.graph.node if n.domain == "edge.ops") == ["ConvLSTMCell", "RoiPool"]
    feeds = {"x": x.numpy(), "rois": rois.numpy(), "h": h.numpy(), "c": c.numpy()}
    got = ort.InferenceSession(str(tmp_path / "n.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.no_grad():
        want = net(x, rois, h, c)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)
    ref = helper.make_model(helper.make_graph(
        [helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[3, 3], spatial_scale=0.5)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("rois", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]), opset_imports=[helper.make_opsetid("", 17)],
        ir_version=10)
    oracle = ort.InferenceSession(ref.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": feeds["x"], "rois": feeds["rois"]})[0]
    np.testing.assert_array_equal(got[0], oracle)
    assert isinstance(onnx.load(str(tmp_path / "n.onnx")), onnx.ModelProto)
