"""Bring your own model, end to end on this machine: export both example models (my_tracker, my_classifier),
build them for the CPU, run them together on a real clip, and bench each against its own PyTorch.

    PYTHONPATH=examples/byom python examples/byom/walkthrough.py [--out out/byom] [--frames 60]

The weights are the seeded random ones of the example modules (pass your checkpoint to `edge.export`'s
``weights`` for yours); the numbers show the pipeline works, not accuracy.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import edge  # noqa: E402


def bench_data(out: Path) -> list[Path]:
    """One short generated OTB sequence and six labelled clips (the bench's task data, made once)."""
    from edge.data.actions import write_clips
    from edge.data.tracking_gen import render_sequence, write_sequence
    if not (out / "otb").is_dir():
        write_sequence(render_sequence(3, length=20), out / "otb")
    if not (out / "clips" / "labels.csv").is_file():
        write_clips(out / "clips", "test", count=6)
    return [out / "otb", out / "clips"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/byom")
    ap.add_argument("--frames", type=int, default=60, help="frames of the clip for edge run")
    a = ap.parse_args(argv)
    out = Path(a.out)
    engines = {}
    for model in ("my_tracker", "my_classifier"):
        exp = edge.export(model, out / "export" / model, log=print)            # validated against PyTorch
        engines[model] = edge.build(exp.path, target="cpu", precision="fp32", out=out / "engines" / model, log=print)
    from edge.assets import video_clip
    summary = edge.run(video_clip("carphone_pristine.mp4"), tracker=engines["my_tracker"], init_box=(60, 30, 60, 70),
                       classifier=engines["my_classifier"], out_video=out / "run.mp4", events=out / "events.jsonl",
                       max_frames=a.frames)
    s = summary.streams[0]
    print(f"edge run: {s.processed}/{s.captured} frames at {s.fps} FPS; events {summary.events_path}")
    report = edge.bench(list(engines.values()), bench_data(out), samples=12, duration=0.1, threads=1,
                        json=out / "bench.json", markdown=out / "bench.md")
    print(report.markdown())
    return {"summary": summary, "report": report, "engines": engines}


if __name__ == "__main__":
    main()
