"""The real models (H3's tracker, H4's classifier): edge export -> edge build cpu fp32 -> load_engines
matches PyTorch for all four networks, at batch/candidate count 1 and 4 where the axis is dynamic."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edge.contract import Manifest
from edge.export.onnx_export import export_model
from edge.models import registry
from edge.models.registry import MODELS, torch_engines
from edge.runtime import load_engines
from edge.runtime.build import build
from edge.runtime.feeds import fresh_feeds, load_examples

TOL = {"tracker": 1e-4, "classifier": 5e-4}   # max abs error, fp32 engine vs PyTorch eager


def _available(model: str) -> bool:
    return importlib.util.find_spec(MODELS[model]) is not None


@pytest.fixture(scope="module", params=["tracker", "classifier"])
def built(request, tmp_path_factory):
    model = request.param
    if not _available(model):
        pytest.skip(f"{MODELS[model]} not written yet")
    out = tmp_path_factory.mktemp(f"export_{model}")
    module = registry.build(model)
    manifest = export_model(model, out, seed=0, model=module)
    engines = tmp_path_factory.mktemp(f"engines_{model}")
    fp = build(out, "cpu", "fp32", engines, threads=2)
    return model, manifest, engines, fp, module


@pytest.mark.slow
def test_real_model_engines_match_pytorch(built, rng):
    model, manifest, engine_dir, fp, module = built
    for name, net in manifest["networks"].items():
        print(model, name, "export validation max abs err", net["validation"]["max_abs_err"],
              "ROI kernel:", fp["networks"][name]["roi_kernel_decision"], fp["networks"][name]["kind"],
              fp["networks"][name]["timings_ms"])
        if "edge.ops::RoiPool" in net["custom_ops"]:   # the split was measured and the faster one kept
            t = fp["networks"][name]["timings_ms"]
            assert fp["networks"][name]["numba_split_faster"] == (t["onnxruntime+numba_split"] < t["onnxruntime_fp32"])
        assert net["validation"]["max_abs_err"] < TOL[model]
    engines, ref = load_engines(engine_dir), torch_engines(model, model=module)
    assert engines.config == ref.config == Manifest.from_dict(manifest).config
    for name, net in manifest["networks"].items():
        examples, _ = load_examples(engine_dir, name)
        syms = sorted({s for i in net["inputs"] for s in i["shape"] if isinstance(s, str)})
        for n in (1, 4):
            feeds = fresh_feeds(net, examples, rng, {s: n for s in syms})
            got, want = engines[name].run(feeds), ref[name].run(feeds)
            errs = {k: float(np.max(np.abs(got[k] - want[k]))) for k in want}
            print(model, name, {s: n for s in syms}, "max abs err", errs)
            assert all(got[k].shape == want[k].shape for k in want)
            assert max(errs.values()) < TOL[model]
            if not syms:
                break
