"""edge: export, calibrate, build, run and benchmark video models for Jetson-class devices.

Each subcommand lives in ``edge/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int`` (argparse plus one call of ``edge.api``); modules load lazily so ``edge run`` never
imports torch. ``python -m edge`` is the same program.

Exit codes (``edge.errors``): 0 ok, 1 a benchmark or check failed its tolerance, 2 bad input (one-line error
on stderr), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from edge import __version__
from edge.errors import EXIT_INTERRUPTED, EXIT_USER, UserError

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


def _interrupt_on(*signals) -> dict:
    """These signals interrupt like Ctrl-C, so a build's or export's clean-up runs (staging folders
    removed; every file is written atomically, so none is left half-written). Inherited ignores stay.
    Returns the handlers replaced."""
    def handler(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    old = {}
    if threading.current_thread() is threading.main_thread():
        for s in signals:
            if signal.getsignal(s) is not signal.SIG_IGN:
                old[s] = signal.signal(s, handler)
    return old


def _module(name: str):
    return importlib.import_module(f"edge.commands.{name.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="edge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # only the chosen subcommand's module is imported (its arguments are added after selection)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _module(name).add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"edge {args.command}: %(message)s")
    # `edge run` stops cleanly on its own (edge.stream.run)
    old = _interrupt_on(signal.SIGTERM, signal.SIGHUP) if args.command != "run" else {}
    try:
        return int(_module(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("edge: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, OSError, ValueError) as e:   # OSError: a missing file, a full disk, an I/O error
        if isinstance(e, OSError) and not isinstance(e, UserError) and e.strerror:
            msg = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
        else:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"edge {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USER
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


if __name__ == "__main__":      # `python -m edge.cli` (as `python -m edge`)
    sys.exit(main())
