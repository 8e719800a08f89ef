"""export -> build cpu -> load_engines against PyTorch, on the stand-in tracker and classifier (fast; real
models in test_export_models.py), plus the one-line errors, the fingerprint checks and the torch-free runtime."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from fixtures import standin_classifier, standin_tracker
from edge.errors import UserError
from edge.cli import main as cli_main
from edge.export.onnx_export import export_model
from edge.models.registry import torch_engines
from edge.runtime import load_engines
from edge.runtime.build import build
from edge.runtime.feeds import fresh_feeds, load_examples
from edge.runtime.precision import PAYS_RATIO, int8_pays
from edge.contract import Fingerprint
from edge.runtime.fingerprint import EngineMismatch

TOL = 1e-4      # fp32 engine vs PyTorch, max abs error
PY = sys.executable


MODELS = {"tracker": standin_tracker, "classifier": standin_classifier}
NETWORKS = [("tracker", "template"), ("tracker", "search"), ("classifier", "encoder"), ("classifier", "step")]
DIMS = {"template": [{}, {"boxes": 3}], "search": [{}, {"rois": 5}], "encoder": [{"batch": 1}, {"batch": 4}],
        "step": [{"batch": 1}, {"batch": 4}]}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Both stand-ins exported: {model: (folder, manifest)}."""
    return {m: (out := tmp_path_factory.mktemp(f"export-{m}"), export_model(mod, out, seed=0))
            for m, mod in MODELS.items()}


@pytest.fixture(scope="module")
def exported(exports):
    return exports["classifier"]


@pytest.fixture(scope="module")
def engine_dirs(exports, tmp_path_factory):
    dirs = {}
    for m, (src, _) in exports.items():
        dirs[m] = tmp_path_factory.mktemp("engines") / m
        assert build(src, "cpu", "fp32", dirs[m], threads=2)["cache_hit"] is False
    return dirs


@pytest.fixture(scope="module")
def engine_dir(engine_dirs):
    return engine_dirs["classifier"]


@pytest.fixture(scope="module")
def references():
    return {m: torch_engines(mod) for m, mod in MODELS.items()}


@pytest.fixture(scope="module")
def reference(references):
    return references["classifier"]


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def _max_errs(a: dict, b: dict) -> dict:
    return {k: float(np.max(np.abs(a[k] - b[k]))) for k in b}


def test_manifest_describes_networks_and_validation(exports):
    out, m = exports["classifier"]
    assert set(m["networks"]) == {"encoder", "step"}
    assert m["config"] == standin_classifier.config(None) and m["opset"] == 17 and len(m["weights"]["sha256"]) == 64
    step = m["networks"]["step"]
    assert [i["name"] for i in step["inputs"]] == ["features", "h", "c"]
    assert [o["name"] for o in step["outputs"]] == ["h_next", "c_next", "logits"]
    assert step["inputs"][0]["shape"][0] == "batch" and step["inputs"][0]["dtype"] == "float32"
    assert step["custom_ops"] == ["edge.ops::ConvLSTMCell"]
    tout, tm = exports["tracker"]
    assert tm["networks"]["search"]["custom_ops"] == ["edge.ops::RoiPool"]
    search = onnx.load(str(tout / "search.onnx"))
    assert [(f.domain, f.name) for f in search.functions] == [("edge.ops", "RoiPool")]
    assert [d.dim_param for d in search.graph.input[1].type.tensor_type.shape.dim] == ["rois", ""]
    for model, (folder, man) in exports.items():
        for name, net in man["networks"].items():
            v = net["validation"]
            print(model, name, "export max abs err", v["max_abs_err"], [c["dims"] for c in v["cases"]])
            assert v["max_abs_err"] < TOL
        assert json.loads((folder / "model.json").read_text()) == man
    assert len(m["networks"]["encoder"]["validation"]["cases"]) == 2       # batch 1 and 4


@pytest.mark.parametrize("model,network", NETWORKS)
def test_cpu_engine_matches_pytorch(engine_dirs, references, model, network, rng):
    engines, reference = load_engines(engine_dirs[model]), references[model]
    net = engines.manifest.raw["networks"][network]
    examples, _ = load_examples(engine_dirs[model], network)
    for dims in DIMS[network]:
        feeds = fresh_feeds(net, examples, rng, dims)
        got, want = engines[network].run(feeds), reference[network].run(feeds)
        errs = _max_errs(got, want)
        print(network, dims, "max abs err", errs)
        assert all(got[k].shape == want[k].shape for k in want)
        assert max(errs.values()) < TOL
    assert engines.backend == "onnxruntime" and engines.config == reference.config


def _config(sess, key: str) -> str:
    return sess.get_session_options().get_session_config_entry(key)


def test_sessions_spin_only_during_a_run(engine_dir, tmp_path):
    """The fingerprint's spin policy reaches every session; older fingerprints' bool still loads."""
    from edge.runtime.ort_backend import SPIN_POLICY
    fp = json.loads((engine_dir / "fingerprint.json").read_text())
    assert fp["session"]["spin"] == SPIN_POLICY == "during_run"
    sessions = [s for e in load_engines(engine_dir).networks.values()
                for s in ([e.session] if hasattr(e, "session") else e.sessions.values())]
    assert sessions and all(_config(s, "session.force_spinning_stop") == "1" and
                            _config(s, "session.intra_op.allow_spinning") == "1" for s in sessions)
    d = _copy(engine_dir, tmp_path)
    fp["session"].pop("spin")
    fp["session"]["allow_spinning"] = False
    (d / "fingerprint.json").write_text(json.dumps(fp))
    old = [s for e in load_engines(d).networks.values()
           for s in ([e.session] if hasattr(e, "session") else e.sessions.values())]
    assert all(_config(s, "session.intra_op.allow_spinning") == "0" for s in old)


def test_rebuild_is_cache_hit_and_changed_input_rebuilds(exported, engine_dir, tmp_path, capsys):
    stamp = {p.name: p.stat().st_mtime_ns for p in engine_dir.glob("*.onnx")}
    fp = build(exported[0], "cpu", "fp32", engine_dir, threads=2)
    assert fp["cache_hit"] is True and "cache hit" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in engine_dir.glob("*.onnx")} == stamp
    other = _copy(engine_dir, tmp_path)
    assert build(exported[0], "cpu", "fp32", other, threads=1)["cache_hit"] is False   # different session


def test_numba_split_matches_one_graph(exports, references, tmp_path, rng, capsys):
    exported, reference = exports["tracker"], references["tracker"]
    out = tmp_path / "split"
    fp = build(exported[0], "cpu", "fp32", out, threads=2, roi_kernel="numba")
    log = capsys.readouterr().out
    print(log)
    assert "numba ROI split" in log
    search = fp["networks"]["search"]
    assert search["kind"] == "onnxruntime+numba"
    kinds = [s["kind"] for s in search["stages"]]
    assert kinds == ["onnxruntime", "roi_pool", "onnxruntime"]
    assert search["stages"][1]["pooled_shape"] == [2, 2] and search["stages"][1]["spatial_scale"] == 0.25
    engines = load_engines(out)
    net = engines.manifest.raw["networks"]["search"]
    feeds = fresh_feeds(net, load_examples(out, "search")[0], rng, {"rois": 7})
    errs = _max_errs(engines["search"].run(feeds), reference["search"].run(feeds))
    print("split search max abs err", errs)
    assert max(errs.values()) < TOL


def test_missing_export_and_calibration_are_one_line_errors(exported, tmp_path, capsys):
    assert cli_main(["build", str(tmp_path / "nope"), "--target", "cpu", "-o", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.json" in err
    assert cli_main(["build", str(exported[0]), "--target", "cpu", "--precision", "int8",
                     "-o", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"edge calibrate {exported[0]} --data" in err
    assert not (tmp_path / "e" / "fingerprint.json").exists()


def test_fp16_on_cpu_is_measured_then_kept_or_refused(exported, engine_dir, tmp_path, capsys):
    before = (engine_dir / "fingerprint.json").read_bytes()
    out = _copy(engine_dir, tmp_path)
    code = cli_main(["build", str(exported[0]), "--target", "cpu", "--precision", "fp16", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    print("fp16 build:", code, err)
    if code == 2:   # slower than fp32 here: refused, and the old engines are untouched
        assert err.count("\n") == 0 and "fp16 is slower than fp32" in err and "ms vs" in err
        assert (out / "fingerprint.json").read_bytes() == before
    else:
        assert code == 0 and load_engines(out).precision == "fp16"


def test_int8_consumes_calibrated_graph_and_keeps_faster(exported, reference, tmp_path, rng):
    from onnx import inliner
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    src = tmp_path / "exp"
    shutil.copytree(exported[0], src)
    (src / "calibration").mkdir()
    for name, net in exported[1]["networks"].items():
        plain = tmp_path / f"{name}.inlined.onnx"
        onnx.save(inliner.inline_local_functions(onnx.load(str(src / net["file"]))), str(plain))
        examples, _ = load_examples(src, name)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([fresh_feeds(net, examples, rng) for _ in range(4)])

            def get_next(self):
                return next(self.it, None)

        quantize_static(str(plain), str(src / "calibration" / f"{name}.int8.ort.onnx"), Reader(),
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    fp = build(src, "cpu", "int8", tmp_path / "int8", threads=2)
    for name, entry in fp["networks"].items():
        t = entry["timings_ms"]
        print(name, entry["precision"], t, entry.get("notes"))
        assert set(t) >= {"onnxruntime_int8", "onnxruntime_fp32"}
        best = {p: min(v for k, v in t.items() if k in (f"onnxruntime_{p}", f"onnxruntime+numba_split_{p}"))
                for p in ("int8", "fp32")}        # each precision judged in its fastest form
        assert entry["precision"] == ("int8" if int8_pays(best["int8"], best["fp32"]) else "fp32")
        # plain onnxruntime on the export, timed in the same rotation: the build says what it adds over it
        kept = ("onnxruntime+numba_split_" if entry["kind"] == "onnxruntime+numba" else "onnxruntime_") + \
            entry["precision"]
        ratio = t["plain_onnxruntime"] / t[kept]
        assert entry["vs_plain_onnxruntime"] == pytest.approx(ratio, rel=1e-2, abs=1e-3)
        says = [n for n in entry.get("notes", []) if "adds nothing over onnxruntime" in n]
        assert bool(says) == (entry["vs_plain_onnxruntime"] < PAYS_RATIO)
        assert all("vs plain onnxruntime on the export" in n and "tried" in n for n in says)
    engines = load_engines(tmp_path / "int8")
    feeds = fresh_feeds(engines.manifest.raw["networks"]["encoder"], load_examples(src, "encoder")[0], rng)
    errs = _max_errs(engines["encoder"].run(feeds), reference["encoder"].run(feeds))
    scale = float(np.abs(reference["encoder"].run(feeds)["features"]).max())
    print("int8 encoder max abs err", errs, "output scale", scale)
    assert max(errs.values()) < 0.1 * scale


def test_int8_and_fp32_are_compared_in_their_best_forms(exports, references, tmp_path, rng):
    """One interleaved measurement of {int8, fp32} x {one graph, numba split}: the precision is judged by its
    fastest form (only the split when ``--roi-kernel numba`` forces it), and the form by the kept precision."""
    from edge.calibration.quantize import quantize

    exported, reference = exports["tracker"], references["tracker"]
    src = tmp_path / "exp"
    shutil.copytree(exported[0], src)
    for name, net in exported[1]["networks"].items():   # edge calibrate's Q/DQ: custom ops stay, float
        examples, _ = load_examples(src, name)
        quantize(src / net["file"], src / "calibration" / f"{name}.int8.ort.onnx", "ort", "minmax",
                 tmp_path / f"{name}.ranges.json", [fresh_feeds(net, examples, rng) for _ in range(4)])
    for roi_kernel in ("numba", "auto"):
        fp = build(src, "cpu", "int8", tmp_path / roi_kernel, threads=2, roi_kernel=roi_kernel)
        e = fp["networks"]["search"]
        t, p = e["timings_ms"], e["precision"]
        print(roi_kernel, p, e["kind"], t, e.get("notes"))
        forms = {q: {f: t[f"{k}_{q}"] for f, k in (("whole", "onnxruntime"), ("split", "onnxruntime+numba_split"))}
                 for q in ("int8", "fp32")}          # all four candidates measured together
        if roi_kernel == "numba":
            assert e["kind"] == "onnxruntime+numba"
            assert p == ("int8" if int8_pays(forms["int8"]["split"], forms["fp32"]["split"]) else "fp32")
        else:
            assert p == ("int8" if int8_pays(min(forms["int8"].values()), min(forms["fp32"].values())) else "fp32")
            assert e["kind"] == ("onnxruntime+numba" if forms[p]["split"] < forms[p]["whole"] else "onnxruntime")
        assert e["numba_split_faster"] == (forms[p]["split"] < forms[p]["whole"])
        assert t["onnxruntime+numba_split"] == forms[p]["split"]
        engines = load_engines(tmp_path / roi_kernel)
        net = engines.manifest.raw["networks"]["search"]
        feeds = fresh_feeds(net, load_examples(src, "search")[0], rng, {"rois": 5})
        want = reference["search"].run(feeds)
        errs = _max_errs(engines["search"].run(feeds), want)
        scale = max(float(np.abs(v).max()) for v in want.values())
        print(roi_kernel, "search max abs err", errs, "output scale", scale)
        assert max(errs.values()) < 0.1 * scale


# --- fingerprint checks: one line naming the fix, raised before any backend is touched ---

def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and isinstance(excinfo.value, UserError)   # UserError -> exit code 2 in `edge`
    return msg


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_tampered_engine_file(engine_dir, tmp_path, damage):
    d = _copy(engine_dir, tmp_path)
    f = d / "encoder.ort.onnx"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if damage == "truncate" else data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    msg = _one_line(e)
    assert "encoder.ort.onnx" in msg and "truncated or modified" in msg and "rebuild with `edge build" in msg


def test_missing_fingerprint_and_corrupt_fingerprint(engine_dir, tmp_path):
    d = _copy(engine_dir, tmp_path)
    (d / "fingerprint.json").write_text("{not json")
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    assert "corrupt" in _one_line(e)
    (d / "fingerprint.json").unlink()
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    assert "no fingerprint.json" in _one_line(e)


def _edit_fingerprint(d: Path, **changes) -> None:
    fp = json.loads((d / "fingerprint.json").read_text())
    fp.update(changes)
    (d / "fingerprint.json").write_text(json.dumps(fp))


def test_wrong_target_and_device(engine_dir, tmp_path):
    with pytest.raises(EngineMismatch) as e:
        load_engines(engine_dir, target="agx-orin")
    assert "built for target 'cpu', not 'agx-orin'" in _one_line(e)
    d = _copy(engine_dir, tmp_path)
    fp = json.loads((d / "fingerprint.json").read_text())
    _edit_fingerprint(d, device=dict(fp["device"], isa=["sse4_2"], name="Other CPU"))
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    assert "optimised for Other CPU" in _one_line(e) and "on this device" in str(e.value)
    _edit_fingerprint(d, target="agx-orin", backend="tensorrt", backend_version="10.3.0.30",
                      device={"kind": "gpu", "name": "Orin", "compute_capability": "8.7"})
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    msg = _one_line(e)
    assert "TensorRT engine for Orin (compute 8.7, target agx-orin)" in msg and "--target cpu" in msg


def test_missing_or_changed_plugin_library(engine_dir, tmp_path):
    d = _copy(engine_dir, tmp_path)
    lib = tmp_path / "libedge_plugins.so"
    lib.write_bytes(b"\x7fELF plugin stand-in bytes")
    from edge.fileio import sha256_file
    _edit_fingerprint(d, target="agx-orin", backend="tensorrt", backend_version="10.3.0.30",
                      plugin_library={"path": str(lib), "sha256": sha256_file(lib)})
    lib.write_bytes(b"\x7fELF rebuilt plugin")
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    assert "changed since" in _one_line(e)
    lib.unlink()
    with pytest.raises(EngineMismatch) as e:
        load_engines(d)
    msg = _one_line(e)
    assert "plugin library" in msg and "is missing" in msg and "rebuild with `edge build" in msg


# --- processes: bare onnxruntime + numpy, torch-free runtime ---

_GUARD = """
import sys, importlib.abc
BLOCK = {BLOCK}
class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in BLOCK:
            raise ImportError('blocked in this test: ' + name)
sys.meta_path.insert(0, Guard())
"""


def _run_isolated(code: str, block: set[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    res = subprocess.run([PY, "-I", "-c", _GUARD.replace("{BLOCK}", repr(block)) + code], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_onnx_runs_with_only_onnxruntime_and_numpy(exports):
    out = _run_isolated(f"""
import json, numpy as np, onnxruntime as ort
for d in {[str(f) for f, _ in exports.values()]!r}:
  m = json.load(open(d + '/model.json'))
  for name, net in m['networks'].items():
    z = np.load(d + '/examples/' + name + '.npz')
    sess = ort.InferenceSession(d + '/' + net['file'], providers=['CPUExecutionProvider'])
    feeds = {{i['name']: z['in.' + i['name']] for i in net['inputs']}}
    got = sess.run(None, feeds)
    err = max(float(np.abs(g - z['out.' + o['name']]).max()) for g, o in zip(got, net['outputs']))
    print(name, err)
    assert err < {TOL}, (name, err)
mods = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'onnx', 'edge'))
assert not mods, mods
""", {"torch", "onnx", "edge"}, exports["tracker"][0])
    print(out)
    assert len(out.strip().splitlines()) == 4


def test_runtime_and_cpu_engines_do_not_import_torch(engine_dirs, tmp_path):
    out = _run_isolated(f"""
import numpy as np
from edge.runtime import load_engines
from edge.runtime.feeds import load_examples
for d in {[str(d) for d in engine_dirs.values()]!r}:
    engines = load_engines(d)
    for name in engines.networks:
        feeds, ref = load_examples(d, name)
        got = engines[name].run(feeds)
        print(name, max(float(np.abs(got[k] - v).max()) for k, v in ref.items()))
bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'onnx'))
assert not bad, bad
""", {"torch", "onnx"}, tmp_path)
    print(out)
    errs = [float(line.split()[1]) for line in out.strip().splitlines()]
    assert len(errs) == 4 and max(errs) < TOL


def test_build_command_is_torch_free(exported, tmp_path):
    out = _run_isolated(f"""
from edge.cli import main
code = main(['build', {str(exported[0])!r}, '--target', 'cpu', '-o', {str(tmp_path / 'e')!r}, '--threads', '1'])
assert code == 0, code
assert not [k for k in sys.modules if k.split('.')[0] == 'torch']
print('ok')
""", {"torch"}, tmp_path)
    assert out.strip().endswith("ok")


def test_tensorrt_version_and_gpu_mismatch_messages(engine_dir):
    from edge.runtime import fingerprint as fpr
    from edge.runtime.trt_backend import tensorrt_version
    d = json.loads((engine_dir / "fingerprint.json").read_text())
    fp = Fingerprint.from_dict({**d, "target": "agx-orin", "precision": "fp16", "source_dir": "/data/export",
                                "backend": "tensorrt", "backend_version": "10.3.0.30",
                                "device": {"kind": "gpu", "name": "Orin", "compute_capability": "8.7"}}, "fp", "x")
    assert tensorrt_version() is None               # only tensorrt_lean here: it cannot run engines, so no version
    here = __import__("tensorrt_lean").__version__  # a TensorRT that is not 10.3 (11.x)
    assert not here.startswith("10.3")
    with pytest.raises(EngineMismatch, match="needs TensorRT 10.3.0.30, which is not installed here"):
        fpr.check_backend_version(fp, engine_dir, tensorrt_version(), "TensorRT")
    with pytest.raises(EngineMismatch) as e:
        fpr.check_backend_version(fp, engine_dir, here, "TensorRT")
    msg = _one_line(e)
    assert f"built with TensorRT 10.3.0.30 but this device has TensorRT {here}" in msg
    assert "rebuild with `edge build /data/export --target agx-orin --precision fp16" in msg
    with pytest.raises(EngineMismatch) as e:
        fpr.check_gpu_device(fp, engine_dir, {"name": "RTX 4090", "compute_capability": "8.9"})
    assert "built for compute capability 8.7 (Orin) but this GPU is RTX 4090 (compute 8.9)" in _one_line(e)


def test_export_bad_input_is_one_line(tmp_path, capsys):
    assert cli_main(["export", "nosuchmodel", "-o", str(tmp_path / "x")]) == 2
    assert cli_main(["export", "tracker", "--weights", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "x")]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 2 and "unknown model 'nosuchmodel'" in errs[0] and "weights not found" in errs[1]
    assert not (tmp_path / "x" / "model.json").exists()
