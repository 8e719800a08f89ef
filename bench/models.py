"""Both sample models end to end on this machine: export -> CPU engines (fp32, and int8 where an
``edge calibrate`` result exists or can be made) -> ``edge bench`` with full defaults (PyTorch reference,
plain-onnxruntime baseline, engines; generated OTB sequences and the labelled test clips).

    .venv/bin/python bench/models.py [--work bench/results/models] [--no-int8] [--reuse]

Writes ``bench/results/models.json``, ``models.md`` and ``models_plots/``; exit code 1 when a row breaks
its tolerance (same rules as ``edge bench``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import edge


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="bench/results/models", help="exports, engines and data")
    ap.add_argument("--out", default="bench/results", help="where models.json / models.md go")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="keep exports/calibration/engines already in --work")
    a = ap.parse_args(argv)
    work, out = Path(a.work), Path(a.out)
    engines = []
    for model in ("tracker", "classifier"):
        exp = work / "export" / model
        if not (a.reuse and (exp / "model.json").is_file()):
            edge.export(model, exp, log=print)
        precisions = ["fp32"]
        if not a.no_int8:
            if not (a.reuse and (exp / "calibration").is_dir()):
                edge.calibrate(exp, flavours=("ort",), fp16=False, log=print)
            precisions.append("int8")
        for p in precisions:
            eng = work / "engines" / f"{model}-cpu-{p}"
            if not (a.reuse and (eng / "fingerprint.json").is_file()):
                edge.build(exp, "cpu", p, eng, log=print)
            engines.append(eng)
    rep = edge.bench(engines, cache=work / "data", json=out / "models.json", markdown=out / "models.md",
                     plots=out / "models_plots", log=print)
    print(rep.markdown())
    return 0 if rep.passed else 1


if __name__ == "__main__":
    sys.exit(main())
