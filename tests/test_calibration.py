"""INT8 calibration and FP16 typing (edge.calibration, ``edge calibrate``).

Tiny tracker/classifier exports with the real I/O contract (built with onnx.helper, ``edge.ops`` nodes with
H2's model-local functions) run through the real torch-free tracker / classifier runtime on a real clip.
The oracle for accuracy is the fp32 graph in onnxruntime (and ONNX's reference evaluator where noted).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

from edge.assets import video_clip
from edge.calibration.collect import collect
from edge.calibration.dataset import CalibSetError, find_sources, load_set, plan, save_set
from edge.calibration.fallback import Tolerance, compare, run_all, search, session
from edge.runtime.precision import convert_fp16
from edge.kernels.onnx_functions import attach_functions

S = 32  # tiny crop / input size


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    g = oh.make_graph(nodes, "tiny", inputs, outputs, inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)], ir_version=10)
    attach_functions(m)
    onnx.checker.check_model(m, full_check=True)
    return m


def _w(rng, name, shape, scale=0.3):
    return nh.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _trunk(rng, src: str) -> tuple[list, list]:
    inits = [nh.from_array(np.array(1 / 255, np.float32), "k255"), _w(rng, "W1", (8, 3, 3, 3)),
             nh.from_array(np.zeros(8, np.float32), "B1"), _w(rng, "W2", (8, 8, 3, 3)),
             nh.from_array(np.full(8, 0.1, np.float32), "B2")]
    nodes = [oh.make_node("Mul", [src, "k255"], ["x0"], name="scale"),
             oh.make_node("Conv", ["x0", "W1", "B1"], ["c1"], pads=[1] * 4, strides=[2, 2], name="conv1"),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=[1] * 4, name="conv2"),
             oh.make_node("Relu", ["c2"], ["r2"], name="relu2")]
    return nodes, inits


def _embed(rois: str, out: str) -> list:
    return [oh.make_node("RoiPool", ["r2", rois], ["pool"], domain="edge.ops", pooled_shape=[2, 2],
                         spatial_scale=0.5, name="roipool"),
            oh.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
            oh.make_node("ReduceL2", ["flat"], ["norm"], axes=[1], keepdims=1, name="l2"),
            oh.make_node("Div", ["flat", "norm"], [out], name="l2div")]


def _io(name, shape):
    return oh.make_tensor_value_info(name, TP.FLOAT, shape)


def _spec(name, shape):
    return {"name": name, "shape": shape, "dtype": "float32"}


def write_tiny_tracker(d: Path, seed: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tn, ti = _trunk(rng, "image")
    template = _model(tn + _embed("box", "embedding"), [_io("image", [1, 3, S, S]), _io("box", ["boxes", 5])],
                      [_io("embedding", ["boxes", 32])], ti)
    rng = np.random.default_rng(seed)
    sn, si = _trunk(rng, "image")
    si.append(nh.from_array(np.array([-1], np.int64), "flat1"))
    sn += _embed("rois", "emb") + [oh.make_node("Reshape", ["template", "flat1"], ["t1"], name="treshape"),
                                   oh.make_node("MatMul", ["emb", "t1"], ["scores"], name="score")]
    searchm = _model(sn, [_io("image", [1, 3, S, S]), _io("rois", ["rois", 5]), _io("template", [1, 32])],
                     [_io("scores", ["rois"])], si)
    onnx.save(template, d / "template.onnx")
    onnx.save(searchm, d / "search.onnx")
    manifest = {"model": "tracker", "config": {
        "crop_size": S, "networks": {"template": {"inputs": ["image", "box"], "outputs": ["embedding"]},
                                     "search": {"inputs": ["image", "rois", "template"], "outputs": ["scores"]}}},
        "networks": {
            "template": {"file": "template.onnx", "inputs": [_spec("image", [1, 3, S, S]), _spec("box", ["boxes", 5])],
                         "outputs": [_spec("embedding", ["boxes", 32])]},
            "search": {"file": "search.onnx", "inputs": [_spec("image", [1, 3, S, S]), _spec("rois", ["rois", 5]),
                                                         _spec("template", [1, 32])],
                       "outputs": [_spec("scores", ["rois"])]}}}
    (d / "model.json").write_text(json.dumps(manifest))
    return d


def write_tiny_classifier(d: Path, seed: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    b = "batch"
    enc = _model([oh.make_node("Mul", ["rgb", "k255"], ["x0"], name="scale"),
                  oh.make_node("Concat", ["x0", "flow"], ["x"], axis=1, name="cat"),
                  oh.make_node("Conv", ["x", "We", "Be"], ["c1"], pads=[1] * 4, strides=[4, 4], name="enc_conv"),
                  oh.make_node("Relu", ["c1"], ["features"], name="enc_relu"),
                  oh.make_node("Conv", ["features", "Wa"], ["a1"], name="att_conv"),
                  oh.make_node("Sigmoid", ["a1"], ["attention"], name="att_sig")],
                 [_io("rgb", [b, 3, S, S]), _io("flow", [b, 2, S, S])],
                 [_io("features", [b, 8, S // 4, S // 4]), _io("attention", [b, 1, S // 4, S // 4])],
                 [nh.from_array(np.array(1 / 255, np.float32), "k255"), _w(rng, "We", (8, 5, 3, 3)),
                  nh.from_array(np.zeros(8, np.float32), "Be"), _w(rng, "Wa", (1, 8, 1, 1))])
    step = _model([oh.make_node("ConvLSTMCell", ["features", "h", "c", "Wl", "Bl"], ["h_next", "c_next"],
                                domain="edge.ops", name="cell"),
                   oh.make_node("GlobalAveragePool", ["c_next"], ["gap"], name="gap"),
                   oh.make_node("Flatten", ["gap"], ["cf"], name="cflat"),
                   oh.make_node("Gemm", ["cf", "Wo", "Bo"], ["logits"], transB=1, name="fc")],
                  [_io("features", [b, 8, S // 4, S // 4]), _io("h", [b, 8, S // 4, S // 4]),
                   _io("c", [b, 8, S // 4, S // 4])],
                  [_io("h_next", [b, 8, S // 4, S // 4]), _io("c_next", [b, 8, S // 4, S // 4]), _io("logits", [b, 3])],
                  [_w(rng, "Wl", (32, 16, 3, 3), 0.1), nh.from_array(np.zeros(32, np.float32), "Bl"),
                   _w(rng, "Wo", (3, 8), 1.0), nh.from_array(np.zeros(3, np.float32), "Bo")])
    onnx.save(enc, d / "encoder.onnx")
    onnx.save(step, d / "step.onnx")
    g = [b, 8, S // 4, S // 4]
    manifest = {"model": "classifier", "config": {"classes": ["a", "b", "c"], "input_size": S, "clip_len": 4,
                                                   "clip_frames": 5},
                "networks": {
                    "encoder": {"file": "encoder.onnx", "inputs": [_spec("rgb", [b, 3, S, S]), _spec("flow", [b, 2, S, S])],
                                "outputs": [_spec("features", g), _spec("attention", [b, 1, S // 4, S // 4])]},
                    "step": {"file": "step.onnx", "inputs": [_spec("features", g), _spec("h", g), _spec("c", g)],
                             "outputs": [_spec("h_next", g), _spec("c_next", g), _spec("logits", [b, 3])]}}}
    (d / "model.json").write_text(json.dumps(manifest))
    return d


@pytest.fixture(scope="module")
def clip() -> list[str]:
    return [str(video_clip("carphone_pristine.mp4"))]   # real 176x144 clip, 120 frames


@pytest.fixture(scope="module")
def tracker_dir(tmp_path_factory) -> Path:
    return write_tiny_tracker(tmp_path_factory.mktemp("trk"))


# -- calibration set ----------------------------------------------------------------------------------
def test_plan_spreads_over_the_whole_video(clip):
    src = find_sources(clip)
    segs = plan(src, 40, 5, seed=3)
    starts = [s.start for s in segs]
    assert len(segs) == 8 and all(s.length == 5 for s in segs)
    assert max(starts) > src[0].count * 0.75 and min(starts) < src[0].count * 0.25   # not just the first N
    assert plan(src, 40, 5, seed=3) == segs and plan(src, 40, 5, seed=4) != segs


def test_calibration_set_is_deterministic_for_a_seed(tracker_dir, clip, tmp_path):
    manifest = json.loads((tracker_dir / "model.json").read_text())
    src = find_sources(clip)
    a = collect(tracker_dir, manifest, src, 24, seed=7, progress=False)
    b = collect(tracker_dir, manifest, src, 24, seed=7, progress=False)
    c = collect(tracker_dir, manifest, src, 24, seed=8, progress=False)
    assert set(a) == {"template", "search"} and len(a["search"]) > 10 and len(a["template"]) >= 3
    for net in a:
        assert len(a[net]) == len(b[net])
        for x, y in zip(a[net], b[net]):
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
    assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(a["search"], c["search"]))
    # real preprocessing: search feeds carry the tracker's template embedding and its candidate rois
    t0 = a["template"][0]
    emb = session(tracker_dir / "template.onnx").run(None, t0)[0]
    assert np.allclose(a["search"][0]["template"], emb[:1], atol=1e-6)
    rois = a["search"][0]["rois"]
    assert rois.shape[1] == 5 and np.all(rois[:, 0] == 0) and np.all(rois[:, 3] > rois[:, 1])
    # saved and reloaded unchanged, keyed
    p = save_set(tmp_path / "set.npz", a, "k1")
    got, head = load_set(p, "k1")
    assert head["key"] == "k1" and all(np.array_equal(got[n][i][k], a[n][i][k])
                                       for n in a for i in range(len(a[n])) for k in a[n][i])
    with pytest.raises(CalibSetError, match="other data"):
        load_set(p, "k2")


def test_classifier_samples_come_from_the_runtime(tmp_path, clip):
    d = write_tiny_classifier(tmp_path / "cls")
    manifest = json.loads((d / "model.json").read_text())
    s = collect(d, manifest, find_sources(clip), 20, seed=0, progress=False)
    assert s["encoder"][0]["rgb"].shape == (1, 3, S, S) and s["encoder"][0]["flow"].shape == (1, 2, S, S)
    assert np.abs(np.concatenate([e["flow"] for e in s["encoder"]])).max() > 0       # DIS flow, not zeros
    hs = [x["h"] for x in s["step"]]
    assert np.all(hs[0] == 0) and any(np.abs(h).max() > 0 for h in hs)              # states evolve


@pytest.mark.parametrize("damage", ["foreign", "truncated", "garbage"])
def test_broken_or_foreign_calibration_file_is_a_one_line_error(tmp_path, damage):
    p = tmp_path / "set.npz"
    if damage == "foreign":
        np.savez(p, x=np.zeros(3))
    else:
        save_set(p, {"n": [{"x": np.arange(1000, dtype=np.float32)}]}, "k")
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a zip" + data[9:])
    with pytest.raises(CalibSetError) as e:
        load_set(p, "k")
    assert "\n" not in str(e.value) and str(p) in str(e.value)


# -- Q/DQ graphs ----------------------------------------------------------------------------------------
def _frame(path: str, rng) -> np.ndarray:
    """A random frame of the calibration clip as the network's [1, 3, S, S] float image. (Uniform noise, which
    no camera gives and no calibration range covers, put the int8 correlation at 0.88 on EDGE_TEST_SEED=943606710.)"""
    import cv2
    cap = cv2.VideoCapture(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(rng.integers(0, max(1, n))))
        ok, f = cap.read()
    finally:
        cap.release()
    assert ok, f"cannot read a frame of {path}"
    return np.ascontiguousarray(cv2.resize(f, (S, S), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)[None],
                                np.float32)


def test_cli_writes_qdq_graphs_that_check_and_run(tracker_dir, clip, rng):
    from edge.cli import main
    assert main(["calibrate", str(tracker_dir), "--data", *clip, "--frames", "24", "--quiet"]) == 0
    out = tracker_dir / "calibration"
    report = json.loads((out / "report.json").read_text())
    for net in ("template", "search"):
        fp32 = session(tracker_dir / f"{net}.onnx")
        feeds = {"image": _frame(clip[0], rng),
                 ("box" if net == "template" else "rois"): np.array([[0, 2, 3, 20, 25], [0, 8, 6, 30, 28]], np.float32)}
        if net == "search":
            # 16 random boxes: the scores' centred correlation needs a spread (two boxes whose fp32 scores
            # nearly tie can quantise to one value: correlation 0 on EDGE_TEST_SEED=344368784)
            xy = rng.uniform(0, 0.6 * S, (16, 2))
            wh = rng.uniform(0.15 * S, 0.4 * S, (16, 2))
            feeds["rois"] = np.concatenate([np.zeros((16, 1)), xy, xy + wh], 1).astype(np.float32)
            feeds["template"] = session(tracker_dir / "template.onnx").run(None, {
                "image": feeds["image"], "box": feeds["rois"][:1]})[0]
        ref = fp32.run(None, feeds)[0]
        for fl in ("ort", "trt"):
            m = onnx.load(str(out / f"{net}.int8.{fl}.onnx"))
            onnx.checker.check_model(m, full_check=True)
            assert [n.op_type for n in m.graph.node if n.domain == "edge.ops"] == ["RoiPool"]
            assert [f.name for f in m.functions] == ["RoiPool"]
            ops = [n.op_type for n in m.graph.node]
            assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 2
            zps = {i.name: nh.to_array(i) for i in m.graph.initializer if i.name.endswith("zero_point")}
            if fl == "trt":   # symmetric signed: every zero point int8 and 0
                assert all(z.dtype == np.int8 and not z.any() for z in zps.values())
            else:             # u8 activations, s8 weights, int32 bias
                assert {z.dtype for z in zps.values()} == {np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32)}
            got = session(m.SerializeToString()).run(None, feeds)[0]
            assert got.shape == ref.shape
            assert compare([{"y": ref}], [{"y": got}])["outputs"]["y"]["corr_mean"] > 0.9
        e = report["networks"][net]
        assert e["int8"]["ort"]["tolerance_met"] and isinstance(e["int8_pays"], bool)
        assert e["files"] == {"int8_ort": f"{net}.int8.ort.onnx", "int8_trt": f"{net}.int8.trt.onnx",
                              "fp16": f"{net}.fp16.onnx"}


def test_cli_refuses_a_damaged_reused_calibration_set(tracker_dir, clip):
    # runs after the test above: the set it saved is reused; damage it and expect one line + exit 2
    sets = sorted((tracker_dir / "calibration").glob("calibset-*.npz"))
    if not sets:
        from edge.cli import main
        main(["calibrate", str(tracker_dir), "--data", *clip, "--frames", "24", "--quiet", "--no-fp16"])
        sets = sorted((tracker_dir / "calibration").glob("calibset-*.npz"))
    data = sets[0].read_bytes()
    sets[0].write_bytes(data[: len(data) // 3])
    r = subprocess.run([sys.executable, "-m", "edge.cli", "calibrate", str(tracker_dir), "--data", *clip,
                        "--frames", "24", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken" in lines[0] and "edge calibrate" in lines[0]


def outlier_model(rng) -> onnx.ModelProto:
    """conv1 has one channel sitting at 1e4 that conv2 ignores: per-tensor int8 of conv1's output spends
    its whole range on that channel and flattens the informative ones to zero."""
    w1 = (rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32)
    b1 = np.zeros(8, np.float32)
    w1[0] = 0
    b1[0] = 1e4
    w2 = (rng.standard_normal((8, 8, 3, 3)) * 0.3).astype(np.float32)
    w2[:, 0] = 0
    nodes = [oh.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1] * 4, name="conv1"),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=[1] * 4, name="conv2"),
             oh.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             oh.make_node("Conv", ["r2", "W3", "B3"], ["c3"], pads=[1] * 4, name="conv3"),
             oh.make_node("GlobalAveragePool", ["c3"], ["g"], name="gap"),
             oh.make_node("Flatten", ["g"], ["y"], name="flat")]
    inits = [nh.from_array(w1, "W1"), nh.from_array(b1, "B1"), nh.from_array(w2, "W2"),
             nh.from_array(np.zeros(8, np.float32), "B2"), _w(rng, "W3", (6, 8, 3, 3)),
             nh.from_array(np.zeros(6, np.float32), "B3")]
    return _model(nodes, [_io("x", [1, 4, 12, 12])], [_io("y", [1, 6])], inits)


@pytest.mark.parametrize("flavour", ["ort", "trt"])
def test_fallback_restores_accuracy_where_plain_int8_breaks(tmp_path, rng, flavour):
    src = tmp_path / "outlier.onnx"
    onnx.save(outlier_model(rng), src)
    samples = [{"x": rng.standard_normal((1, 4, 12, 12)).astype(np.float32)} for _ in range(24)]
    cal, held = samples[:16], samples[16:]
    tol = Tolerance(0.99)
    e = search(src, tmp_path / "q.onnx", flavour, "minmax", tmp_path / "r.json", cal, held, tol)
    assert e["all_quantized"]["cosine"] < 0.9               # plain int8 is broken ...
    assert e["tolerance_met"] and e["final"]["cosine"] >= 0.99   # ... the fallback fixes it
    order = [k["node"] for k in e["kept_float"]]
    kept = set(order)
    # the outlier layers go float first; the harmless conv3 only after them, if the tolerance still asks for it
    # (EDGE_TEST_SEED=723435221 draws such a case: conv1, conv2, then conv3 float)
    assert kept & {"conv1", "conv2"} and all(k["reason"] for k in e["kept_float"])
    assert "conv3" not in kept or order.index("conv3") > max(order.index(c) for c in kept & {"conv1", "conv2"})
    # independent check of the written file on fresh inputs, fp32 oracle = ONNX reference evaluator
    from onnx.reference import ReferenceEvaluator
    ref = ReferenceEvaluator(str(src))
    fresh = [{"x": rng.standard_normal((1, 4, 12, 12)).astype(np.float32)} for _ in range(6)]
    want = [{"y": ref.run(None, f)[0]} for f in fresh]
    got = run_all(session(tmp_path / "q.onnx"), fresh)
    assert compare(want, got)["cosine"] >= 0.98
    m = onnx.load(str(tmp_path / "q.onnx"))
    assert "QuantizeLinear" in [n.op_type for n in m.graph.node]     # still int8 where harmless


# -- fp16 -----------------------------------------------------------------------------------------------
def _types(model: onnx.ModelProto) -> dict[str, int]:
    inf = onnx.shape_inference.infer_shapes(model)
    vis = list(inf.graph.value_info) + list(inf.graph.input) + list(inf.graph.output)
    t = {v.name: v.type.tensor_type.elem_type for v in vis}
    t.update({i.name: i.data_type for i in inf.graph.initializer})
    return t


def test_fp16_keeps_sensitive_ops_fp32_and_runs(tracker_dir, tmp_path, rng):
    m, keep = convert_fp16(onnx.load(str(tracker_dir / "template.onnx")), inline=False)
    assert {"l2", "l2div", "roipool"} <= set(keep) and "conv1" not in keep
    onnx.checker.check_model(m, full_check=True)
    types = _types(m)
    nodes = {n.name: n for n in m.graph.node}
    for name in ("l2", "l2div", "roipool"):
        assert all(types[i] == TP.FLOAT for i in nodes[name].input if i in types)
    assert types["W1"] == TP.FLOAT16 and types[nodes["conv2"].output[0]] == TP.FLOAT16
    assert {i.type.tensor_type.elem_type for i in m.graph.input} == {TP.FLOAT}   # fp32 I/O
    feeds = {"image": (rng.random((1, 3, S, S)) * 255).astype(np.float32),
             "box": np.array([[0, 1, 2, 20, 30]], np.float32)}
    want = session(tracker_dir / "template.onnx").run(None, feeds)[0]
    got = session(m.SerializeToString()).run(None, feeds)[0]
    assert got.dtype == np.float32 and np.abs(got - want).max() < 5e-3


def test_fp16_keeps_the_cell_state_path_fp32(tmp_path, rng):
    d = write_tiny_classifier(tmp_path / "cls")
    m, keep = convert_fp16(onnx.load(str(d / "step.onnx")), inline=False)
    assert "cell" in keep                                 # ConvLSTMCell: c -> c_next
    types = _types(m)
    cell = next(n for n in m.graph.node if n.name == "cell")
    assert all(types[i] == TP.FLOAT for i in cell.input if i in types)
    assert types["Wo"] == TP.FLOAT16                      # the classifier head is fp16
    g = (1, 8, S // 4, S // 4)
    feeds = {k: rng.standard_normal(g).astype(np.float32) for k in ("features", "h", "c")}
    want = session(d / "step.onnx").run(None, feeds)
    got = session(m.SerializeToString()).run(None, feeds)
    for w, x in zip(want, got):
        assert np.abs(w - x).max() < 2e-2 * max(1.0, np.abs(w).max())


def test_fp16_state_path_of_plain_ops_stays_fp32(rng):
    """c -> f*c + i*g -> c_next written with plain ops: every node on that path is kept fp32."""
    g = [1, 4]
    nodes = [oh.make_node("MatMul", ["x", "Wx"], ["z"], name="gates"),
             oh.make_node("Sigmoid", ["z"], ["f"], name="f_gate"),
             oh.make_node("Tanh", ["z"], ["gg"], name="g_gate"),
             oh.make_node("Mul", ["f", "c"], ["fc"], name="forget"),
             oh.make_node("Add", ["fc", "gg"], ["c_next"], name="cell_add"),
             oh.make_node("MatMul", ["c_next", "Wy"], ["y"], name="head")]
    m = _model(nodes, [_io("x", g), _io("c", g)], [_io("c_next", g), _io("y", [1, 2])],
               [_w(rng, "Wx", (4, 4)), _w(rng, "Wy", (4, 2))])
    out, keep = convert_fp16(m, inline=False)
    assert {"forget", "cell_add"} <= set(keep) and not {"gates", "f_gate", "g_gate"} & set(keep)
    types = _types(out)
    nodes = {n.name: n for n in out.graph.node}
    assert all(types[i] == TP.FLOAT for k in ("forget", "cell_add") for i in nodes[k].input)
    assert types["Wx"] == TP.FLOAT16 and types[nodes["gates"].output[0]] == TP.FLOAT16
    feeds = {"x": rng.standard_normal(g).astype(np.float32), "c": rng.standard_normal(g).astype(np.float32)}
    want = session(m.SerializeToString()).run(None, feeds)
    got = session(out.SerializeToString()).run(None, feeds)
    for w, x in zip(want, got):
        assert np.abs(w - x).max() < 1e-2


def test_entropy_and_percentile_ranges_are_not_minmax(tmp_path, rng):
    """onnxruntime's defaults would make entropy == minmax (128 bins = 128 quantized bins); ours clip tails."""
    from onnxruntime.quantization.calibrate import load_tensors_data
    from edge.calibration.quantize import compute_ranges
    src = tmp_path / "m.onnx"
    onnx.save(outlier_model(rng), src)
    samples = [{"x": rng.standard_normal((1, 4, 12, 12)).astype(np.float32)} for _ in range(40)]
    samples[5]["x"][0, 1, 3, 3] = 30.0      # one value in 23040 (< 0.005 % a side): minmax spends the range on it
    hi = {}
    for method in ("minmax", "entropy", "percentile"):
        r = load_tensors_data(compute_ranges(src, samples, method, tmp_path / f"{method}.json"))
        hi[method] = float(np.asarray(r["x"].range_value[1]).ravel()[0])
    x_max = max(float(s["x"].max()) for s in samples)
    assert hi["minmax"] == pytest.approx(x_max, rel=1e-6)
    assert hi["entropy"] < 0.5 * x_max and hi["percentile"] < 0.5 * x_max


def test_gathered_weight_rows_quantize_and_run(tmp_path, rng):
    """A Gather of a weight row (the classifier's CAM pattern) must not break the Q/DQ graph."""
    nodes = [oh.make_node("MatMul", ["x", "Wm"], ["y1"], name="mm"),
             oh.make_node("Gemm", ["y1", "Wt"], ["cls"], transB=1, name="classes"),    # ImageNet head
             oh.make_node("ArgMax", ["cls"], ["k"], axis=1, keepdims=0, name="top"),
             oh.make_node("Gather", ["Wt", "k"], ["row"], axis=0, name="cam_row"),     # its top-1 row
             oh.make_node("Mul", ["y1", "row"], ["y"], name="mod")]
    m = _model(nodes, [_io("x", [1, 6])], [_io("y", [1, 6])], [_w(rng, "Wm", (6, 6)), _w(rng, "Wt", (10, 6))])
    src = tmp_path / "g.onnx"
    onnx.save(m, src)
    samples = [{"x": rng.standard_normal((1, 6)).astype(np.float32)} for _ in range(8)]
    e = search(src, tmp_path / "q.onnx", "ort", "minmax", tmp_path / "r.json", samples, samples, Tolerance(0.9))
    assert e["tolerance_met"]
    assert run_all(session(tmp_path / "q.onnx"), samples)[0]["y"].shape == (1, 6)


def test_fp16_output_also_consumed_inside_the_graph(rng):
    """An fp32 graph output that fp16 nodes also read (the classifier's attention map): types stay consistent."""
    nodes = [oh.make_node("MatMul", ["x", "W"], ["att"], name="mm"),
             oh.make_node("Softmax", ["att"], ["att_s"], axis=1, name="sm"),
             oh.make_node("Mul", ["x", "att"], ["y"], name="use")]
    m = _model(nodes, [_io("x", [1, 4])], [_io("att", [1, 4]), _io("y", [1, 4])], [_w(rng, "W", (4, 4))])
    m.graph.output.append(_io("att_s", [1, 4]))
    out, keep = convert_fp16(m, inline=False)
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": rng.standard_normal((1, 4)).astype(np.float32)}
    want = session(m.SerializeToString()).run(None, feeds)
    got = session(out.SerializeToString()).run(None, feeds)
    assert [g.dtype for g in got] == [np.float32] * 3
    for w, g in zip(want, got):
        assert np.abs(w - g).max() < 1e-2
