"""``edge export-triton ENGINE_DIR... -o REPO``: a Triton model repository for a GPU server (torch-free).

``tensorrt_plan`` for TensorRT engine folders (plugin library copied, ``serve.sh`` loads it), ``onnxruntime``
otherwise; dynamic batching for networks with a batch axis; the ConvLSTM step with a sequence batcher and
implicit state (``--step-state explicit``: h/c as plain tensors, the protocol of ``edge run --remote``).
"""
from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("engine_dirs", nargs="+", metavar="ENGINE_DIR", help="engine folders built by `edge build`")
    p.add_argument("-o", "--out", required=True, metavar="REPO", help="model repository folder to write")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"),
                   help="auto: tensorrt_plan for TensorRT engines, onnxruntime otherwise")
    p.add_argument("--prefix", action="append", default=[], metavar="NAME",
                   help="model name for the ENGINE_DIR at the same position (default: the manifest's model)")
    p.add_argument("--max-batch", type=int, default=8,
                   help="largest dynamic batch for onnxruntime models (TensorRT: the engine's profile)")
    p.add_argument("--max-queue-delay-us", type=int, default=100, help="dynamic/sequence batcher queue delay")
    p.add_argument("--instances", type=int, default=1, help="model instances per network")
    p.add_argument("--kind", default="gpu", choices=("gpu", "cpu"), help="instance kind (default gpu)")
    p.add_argument("--step-state", default="implicit", choices=("implicit", "explicit"),
                   help="ConvLSTM h/c kept on the server per sequence (implicit) or sent by the client")


def run(args) -> int:
    from edge.export.triton import describe, export_triton
    done = export_triton(args.engine_dirs, args.out, backend=args.backend, prefixes=args.prefix,
                         max_batch=args.max_batch, queue_delay_us=args.max_queue_delay_us,
                         instances=args.instances, kind=args.kind, step_state=args.step_state)
    for line in describe(done):
        print(f"export-triton: {line}", file=sys.stderr)
    print(f"export-triton: repository {args.out}/models ({len(done)} models); start with {args.out}/serve.sh",
          file=sys.stderr)
    return 0
