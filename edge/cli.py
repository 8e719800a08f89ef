"""edge: export, calibrate, build, run and benchmark video models for Jetson-class devices.

Each subcommand lives in ``edge/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules load lazily so ``edge run`` never imports torch.

Exit codes: 0 ok, 1 a benchmark or check failed its tolerance, 2 bad input (one-line error on stderr),
130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from edge.errors import UserError

COMMANDS = {
    "export": "export ONNX networks + manifest from the PyTorch reference models",
    "calibrate": "INT8 calibration: Q/DQ graphs from representative video",
    "build": "build engines for a target device (cpu = onnxruntime, Jetson/x86 = TensorRT)",
    "run": "run tracker/classifier engines on live video or files (torch-free)",
    "bench": "FPS and accuracy of engines against the PyTorch reference",
    "demo": "the main job end to end on this machine's default target",
    "serve": "serve engine folders on a Triton Inference Server (gRPC/HTTP, dynamic batching)",
    "export-triton": "a Triton model repository (tensorrt_plan / onnxruntime) for a GPU server",
}


def _module(name: str):
    return importlib.import_module(f"edge.commands.{name.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="edge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # only the chosen subcommand's module is imported (its arguments are added after selection)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _module(name).add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("edge: interrupted", file=sys.stderr)
        return 130
    except (UserError, FileNotFoundError, ValueError) as e:
        print(f"edge {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # `python -m edge.cli`: run the importable module so its classes are the ones raised
    from edge.cli import main as _main
    sys.exit(_main())
