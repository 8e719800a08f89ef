"""ptxas resource report of both CUDA kernels per GPU architecture (a script; needs nvcc only, no GPU).

Compiles kernels/roi_pool/roi_pool.cu and kernels/convlstm/convlstm.cu with ``-Xptxas -v`` for each
architecture (default: sm_87 = Jetson Orin, sm_75, sm_90) and records, per kernel instantiation, registers,
spill stores / loads and stack frame. Writes ``OUT/kernels_ptxas.json`` and ``.md`` and prints the table.
(bench/gpu_kernels.py reports the same for the GPU it runs on.)

    .venv/bin/python bench/kernels_ptxas.py [--arch 87 75 90] [--out bench/results]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kernels import build_tools  # noqa: E402

SOURCES = [build_tools.KERNELS_DIR / "roi_pool" / "roi_pool.cu", build_tools.KERNELS_DIR / "convlstm" / "convlstm.cu"]


def report(archs: list[str], build_dir: Path) -> list[dict]:
    rows = []
    for arch in archs:   # one build per arch: ptxas prints the kernels of each target in its own block
        text = "".join(build_tools.nvcc_link([src], build_dir, f"{src.stem}_sm{arch}", [arch], kind="object")[1]
                       for src in SOURCES)
        rows += [{k: r[k] for k in ("kernel", "arch", "registers", "spill_stores", "spill_loads", "stack_bytes")}
                 for r in build_tools.ptxas_report(text)]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", nargs="+", default=["87", "75", "90"])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    if build_tools.find_nvcc() is None:
        print("bench/kernels_ptxas.py: nvcc not found (install the CUDA toolkit or set CUDA_HOME)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = report(a.arch, Path(tmp))
    rep = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "nvcc": build_tools.run([build_tools.find_nvcc(), "--version"]).strip().splitlines()[-1], "kernels": rows}
    lines = ["| kernel | arch | registers | spill stores (B) | spill loads (B) | stack (B) |", "|---|---|---|---|---|---|"]
    lines += [f"| `{r['kernel'].split('(')[0]}` | {r['arch']} | {r['registers']} | {r['spill_stores']} | "
              f"{r['spill_loads']} | {r['stack_bytes']} |" for r in rows]
    a.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("kernels_ptxas.json", json.dumps(rep, indent=1) + "\n"), ("kernels_ptxas.md", "\n".join(lines) + "\n")):
        tmp = a.out / f".{name}.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, a.out / name)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
