"""Tiny stand-in tracker and classifier, exported and built for the cpu target (shared by the bench and
demo tests)."""
from __future__ import annotations

from pathlib import Path

import test_bench_standin_classifier as tiny_classifier
import test_bench_standin_tracker as tiny_tracker
from edge.cli import main


def build_standins(root: Path) -> dict[str, Path]:
    """``edge export`` + ``edge build --target cpu`` (fp32) of both stand-ins under ``root``; engine folders."""
    from edge.export.onnx_export import export_model
    out = {}
    for name, mod in (("tracker", tiny_tracker), ("classifier", tiny_classifier)):
        export_model(mod, root / "export" / name, seed=0, log=lambda m: None)
        eng = root / "engines" / f"{name}-cpu-fp32"
        assert main(["build", str(root / "export" / name), "--target", "cpu", "-o", str(eng)]) == 0
        out[name] = eng
    return out
