"""``edge export {tracker|classifier} [--weights PATH] -o DIR``: ONNX networks + ``model.json``."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="tracker | classifier (or a dotted model module path)")
    p.add_argument("--weights", default=None, help="checkpoint (.pth, loaded with weights_only=True)")
    p.add_argument("-o", "--output", required=True, help="output folder (ONNX per network + model.json)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset of the exported graphs (default 17)")
    p.add_argument("--seed", type=int, default=None, help="seed of the fresh validation inputs")


def run(args: argparse.Namespace) -> int:
    import edge.api
    edge.api.export(args.model, args.output, weights=args.weights, opset=args.opset, seed=args.seed, log=print)
    return 0
