"""``edge export-triton`` and the ``edge serve`` repository: every config.pbtxt parses into Triton's own
``ModelConfig`` (tritonclient's model_config_pb2 + protobuf text format) with the manifest's names, dtypes,
shapes and profiles; the ConvLSTM step has a sequence batcher with implicit h/c state; the copied ONNX runs
in plain onnxruntime to the engine's result; a TensorRT folder becomes tensorrt_plan with its plugin.

Only validated here (no Triton onnxruntime/TensorRT backend on this machine): that a GPU server loads the
exported repository."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

mc = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs the serve extra (tritonclient)")
from google.protobuf import json_format, text_format  # noqa: E402

from edge.cli import main  # noqa: E402
from edge.runtime import load_engines  # noqa: E402
from edge.runtime.feeds import fresh_feeds, load_examples  # noqa: E402
from edge.fileio import atomic_write_json, read_json, sha256_file  # noqa: E402
from edge.runtime.triton_config import to_pbtxt  # noqa: E402
from edge.serve.repository import write_serve_repository  # noqa: E402
from fixtures.engines import build_standins  # noqa: E402

DT = {"float32": mc.DataType.TYPE_FP32}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    return build_standins(tmp_path_factory.mktemp("triton_export"))


def parse(path) -> "mc.ModelConfig":
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def params(cfg) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}


def check_tensors(entries, specs, batched):
    assert [e.name for e in entries] == [s["name"] for s in specs]
    for e, s in zip(entries, specs):
        shape = s["shape"][1:] if batched else s["shape"]
        assert list(e.dims) == [d if isinstance(d, int) else -1 for d in shape], e.name
        assert e.data_type == DT[s["dtype"]]


def test_text_format_round_trips_any_string():
    """The writer's string escaping, checked by protobuf's own parser."""
    nasty = 'a "quoted" \\ back\nslash\ttab \x01 ctrl é ü 中'
    cfg = {"name": "m", "parameters": [{"key": "k", "value": {"string_value": nasty}}]}
    got = text_format.Parse(to_pbtxt(cfg), mc.ModelConfig())
    assert got.parameters["k"].string_value == nasty


def test_export_onnxruntime_repository(engines, tmp_path, rng):
    repo = tmp_path / "repo"
    assert main(["export-triton", str(engines["tracker"]), str(engines["classifier"]), "-o", str(repo)]) == 0
    assert sorted(p.name for p in repo.iterdir()) == ["models", "serve.sh"]
    models = sorted(p.name for p in (repo / "models").iterdir())
    assert models == ["classifier_encoder", "classifier_step", "tracker_search", "tracker_template"]
    for name in models:
        model, net = name.split("_", 1)
        cfg = parse(repo / "models" / name / "config.pbtxt")
        local = load_engines(engines[model])
        spec = local.manifest.raw["networks"][net]
        assert cfg.name == name and cfg.backend == "onnxruntime" and cfg.default_model_filename == "model.onnx"
        p = params(cfg)
        assert json.loads(p["edge_manifest"]) == local.manifest.raw and p["edge_network"] == net
        assert json.loads(p["edge_profile"]) == spec["profile"]
        assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
        # the ONNX copied is the build's source graph, and it runs to the engine's result
        fp = read_json(engines[model] / "fingerprint.json")
        onnx_path = repo / "models" / name / "1" / "model.onnx"
        assert sha256_file(onnx_path) == fp["networks"][net]["source_sha256"]
        ex, _ = load_examples(engines[model], net)
        feeds = fresh_feeds(spec, ex, rng)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        want = local[net].run(feeds)
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        for k, v in want.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5)
        if net == "step":
            continue
        batched = net == "encoder"
        assert (cfg.max_batch_size == 8) == batched and cfg.HasField("dynamic_batching") == batched
        check_tensors(cfg.input, spec["inputs"], batched)
        check_tensors(cfg.output, spec["outputs"], batched)
    assert 'tritonserver --model-repository="$here/models"' in (repo / "serve.sh").read_text()


def test_step_has_sequence_batcher_with_implicit_h_c_state(engines, tmp_path):
    repo = tmp_path / "repo"
    assert main(["export-triton", str(engines["classifier"]), "-o", str(repo)]) == 0
    cfg = parse(repo / "models" / "classifier_step" / "config.pbtxt")
    spec = read_json(engines["classifier"] / "model.json")["networks"]["step"]
    shapes = {s["name"]: s["shape"][1:] for s in spec["inputs"]}
    assert cfg.HasField("sequence_batching") and not cfg.HasField("dynamic_batching")
    seq = cfg.sequence_batching
    states = {s.input_name: s for s in seq.state}
    assert set(states) == {"h", "c"}
    assert {s.input_name: s.output_name for s in seq.state} == {"h": "h_next", "c": "c_next"}
    for name, s in states.items():
        assert list(s.dims) == shapes[name] and s.data_type == mc.DataType.TYPE_FP32
        assert s.initial_state[0].zero_data and list(s.initial_state[0].dims) == shapes[name]
    assert [i.name for i in cfg.input] == ["features"] and [o.name for o in cfg.output] == ["logits"]
    assert seq.HasField("oldest") and seq.max_sequence_idle_microseconds > 0
    # explicit: h/c stay plain tensors (the protocol of edge run --remote)
    assert main(["export-triton", str(engines["classifier"]), "-o", str(tmp_path / "x"), "--step-state",
                 "explicit"]) == 0
    cfg = parse(tmp_path / "x" / "models" / "classifier_step" / "config.pbtxt")
    assert not cfg.HasField("sequence_batching") and [i.name for i in cfg.input] == ["features", "h", "c"]


def test_tensorrt_folder_becomes_tensorrt_plan_with_plugin(engines, tmp_path):
    """A TensorRT engine folder (its layout as `edge build --target orin-nx` writes it; the plan bytes are
    opaque to export-triton) -> platform tensorrt_plan, max batch from the engine's profile, plugin copied."""
    trt = tmp_path / "classifier-orin"
    shutil.copytree(engines["classifier"], trt)
    plugin = tmp_path / "libedge_plugins.so"
    plugin.write_bytes(b"\x7fELF plugin stand-in")
    fp = read_json(trt / "fingerprint.json")
    manifest = read_json(trt / "model.json")
    manifest["networks"]["encoder"]["profile"] = {"rgb": {"0": [1, 2, 4]}, "flow": {"0": [1, 2, 4]}}
    atomic_write_json(trt / "model.json", manifest)
    fp.update(backend="tensorrt", target="orin-nx", plugin_library={"path": str(plugin), "sha256": sha256_file(plugin)})
    for net in fp["networks"]:
        (trt / f"{net}.engine").write_bytes(f"plan of {net}".encode())
        fp["networks"][net].update(kind="tensorrt", files={f"{net}.engine": sha256_file(trt / f"{net}.engine")})
    atomic_write_json(trt / "fingerprint.json", fp)
    repo = tmp_path / "repo"
    assert main(["export-triton", str(trt), "-o", str(repo), "--prefix", "cls"]) == 0
    enc = parse(repo / "models" / "cls_encoder" / "config.pbtxt")
    assert enc.platform == "tensorrt_plan" and enc.default_model_filename == "model.plan"
    assert enc.max_batch_size == 4 and enc.HasField("dynamic_batching")       # the profile's max
    assert list(enc.instance_group[0].profile) == ["0"]
    assert (repo / "models" / "cls_encoder" / "1" / "model.plan").read_bytes() == b"plan of encoder"
    assert (repo / "plugins" / plugin.name).read_bytes() == plugin.read_bytes()
    assert sorted(p.name for p in (repo / "models").iterdir()) == ["cls_encoder", "cls_step"]
    assert f"plugins=\"$here/plugins/{plugin.name}\"" in (repo / "serve.sh").read_text()
    step = parse(repo / "models" / "cls_step" / "config.pbtxt")
    assert step.max_batch_size == 1 and {s.input_name for s in step.sequence_batching.state} == {"h", "c"}
    # tensorrt_plan from CPU engines is refused with one line
    assert main(["export-triton", str(engines["classifier"]), "-o", str(tmp_path / "bad"), "--backend",
                 "tensorrt"]) == 2


def test_serve_repository_configs_parse(engines, tmp_path):
    served = write_serve_repository([engines["tracker"], engines["classifier"]], tmp_path / "models",
                                    prefixes=["trk"], max_batch=4, queue_delay_us=250)
    assert {s.name for s in served} == {"trk_template", "trk_search", "classifier_encoder", "classifier_step",
                                        "classifier_window"}
    for s in served:
        cfg = parse(tmp_path / "models" / s.name / "config.pbtxt")
        assert cfg.backend == "python" and (tmp_path / "models" / s.name / "1" / "model.py").is_file()
        assert params(cfg)["edge_engine_dir"] == str(s.engine_dir) and params(cfg)["edge_model"] == s.model
        nets = read_json(s.engine_dir / "model.json")["networks"]
        if s.network == "window":       # the step unrolled on the server: features [B, T, C, H, W] -> logits
            step = nets["step"]
            assert params(cfg)["edge_network"] == "step" and params(cfg)["edge_composite"] == "window"
            feats = next(x for x in step["inputs"] if x["name"] == "features")["shape"]
            assert [i.name for i in cfg.input] == ["features"] and list(cfg.input[0].dims) == [-1, *feats[1:]]
            check_tensors(cfg.output, [x for x in step["outputs"] if x["name"] == "logits"], True)
        else:
            assert "edge_composite" not in params(cfg) and params(cfg)["edge_network"] == s.network
            check_tensors(cfg.input, nets[s.network]["inputs"], s.batched)
            check_tensors(cfg.output, nets[s.network]["outputs"], s.batched)
        assert s.batched == (s.network in ("encoder", "step", "window"))
        if s.batched:
            assert cfg.max_batch_size == 4 and cfg.dynamic_batching.max_queue_delay_microseconds == 250
    assert json_format.MessageToDict(cfg)["name"] == served[-1].name
    # `edge serve` hosts every network of its engine folders at once: each build's threads shared among them
    # (the rule of `edge run`); ``threads`` overrides; one folder alone keeps its build's
    from edge.runtime import fingerprint as fpr
    for s in served:
        built = fpr.read(s.engine_dir).session.threads
        cfg = parse(tmp_path / "models" / s.name / "config.pbtxt")
        assert params(cfg)["edge_threads"] == str(max(1, built // 2))
    for s in write_serve_repository([engines["tracker"]], tmp_path / "one"):
        built = fpr.read(s.engine_dir).session.threads
        assert params(parse(tmp_path / "one" / s.name / "config.pbtxt"))["edge_threads"] == str(built)
    for s in write_serve_repository([engines["tracker"]], tmp_path / "three", threads=3):
        assert params(parse(tmp_path / "three" / s.name / "config.pbtxt"))["edge_threads"] == "3"
    with pytest.raises(Exception, match="--prefix"):
        write_serve_repository([engines["tracker"], engines["tracker"]], tmp_path / "dup")
