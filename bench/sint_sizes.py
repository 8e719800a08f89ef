"""Choose SINT search-network sizes: PyTorch eager vs onnxruntime (default 2 threads) per crop and pooled size.

The ONNX side is the trunk exported with ``torch.onnx.export`` plus the RoiPool head written with the
standard ``MaxRoiPool`` op (same semantics as ``edge.ops::RoiPool``), so it measures what a plain
onnxruntime CPU engine costs before any custom kernel. Writes JSON + Markdown (medians, warm-up).

    .venv/bin/python bench/sint_sizes.py [--out out/bench/sint_sizes]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from edge.models.mobilenet_v2 import STAGES, mobilenet_v2_imagenet
from edge.models.sint import NUM_CANDIDATES, SINT, example_rois


class _Trunk(torch.nn.Module):
    def __init__(self, sint: SINT):
        super().__init__()
        self.sint = sint

    def forward(self, image):
        return tuple(self.sint.feature_maps(image))


def trunk_onnx(sint: SINT) -> onnx.ModelProto:
    """The trunk alone: image -> the tapped feature maps."""
    s = sint.crop_size
    buf = io.BytesIO()
    torch.onnx.export(_Trunk(sint), (torch.zeros(1, 3, s, s),), buf, input_names=["image"],
                      output_names=[f"f{t}" for t in sint.taps], opset_version=17, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def search_onnx(sint: SINT) -> onnx.ModelProto:
    """Trunk export + MaxRoiPool / L2-normalise / concat / MatMul head (the search network)."""
    names = [f"f{t}" for t in sint.taps]
    m = trunk_onnx(sint)
    g = m.graph
    parts = []
    for t, n in zip(sint.taps, names):
        g.node.extend([
            helper.make_node("MaxRoiPool", [n, "rois"], [f"p{t}"], pooled_shape=list(sint.pooled),
                             spatial_scale=1.0 / STAGES[t][1]),
            helper.make_node("Flatten", [f"p{t}"], [f"v{t}"], axis=1),
            helper.make_node("LpNormalization", [f"v{t}"], [f"u{t}"], axis=1, p=2)])
        parts.append(f"u{t}")
    g.node.extend([helper.make_node("Concat", parts, ["emb"], axis=1),
                   helper.make_node("Reshape", ["template", "minus1"], ["tvec"]),
                   helper.make_node("MatMul", ["emb", "tvec"], ["scores"])])
    g.initializer.append(helper.make_tensor("minus1", TensorProto.INT64, [1], [-1]))
    g.input.extend([helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["R", 5]),
                    helper.make_tensor_value_info("template", TensorProto.FLOAT, [1, sint.embedding_dim])])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["R"]))
    onnx.checker.check_model(m)
    return m


def median_ms(fn, warmup: int = 5, runs: int = 30) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench/sint_sizes")
    ap.add_argument("--sizes", default="160,176,192")
    ap.add_argument("--pooled", default="3,4")
    ap.add_argument("--threads", type=int, default=2, help="threads for PyTorch and onnxruntime")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = mobilenet_v2_imagenet()
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    rows = []
    for s in (int(v) for v in args.sizes.split(",")):
        for p in (int(v) for v in args.pooled.split(",")):
            sint = SINT(base, s, pooled=(p, p))
            image = torch.rand(1, 3, s, s) * 255
            rois = example_rois(NUM_CANDIDATES, s)
            with torch.no_grad():
                template = sint.embed(image, rois[:1])
                ref = sint.score(image, rois, template).numpy()
                eager = median_ms(lambda: sint.score(image, rois, template), 2, 5)
                trunk = median_ms(lambda: sint.feature_maps(image), 2, 10)
            sess = ort.InferenceSession(search_onnx(sint).SerializeToString(), so, providers=["CPUExecutionProvider"])
            feeds = {"image": image.numpy(), "rois": rois.numpy(), "template": template.numpy()}
            out = sess.run(None, feeds)[0]
            ort_ms = median_ms(lambda: sess.run(None, feeds))
            trunk_only = ort.InferenceSession(trunk_onnx(sint).SerializeToString(), so,
                                              providers=["CPUExecutionProvider"])
            ort_trunk = median_ms(lambda: trunk_only.run(None, {"image": feeds["image"]}))
            rows.append({"crop_size": s, "pooled": p, "embedding_dim": sint.embedding_dim, "rois": NUM_CANDIDATES,
                         "torch_eager_ms": round(eager, 2), "torch_trunk_ms": round(trunk, 2),
                         "ort_search_ms": round(ort_ms, 2), "ort_trunk_ms": round(ort_trunk, 2),
                         "max_abs_err": float(np.abs(out - ref).max())})
            print(rows[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": args.threads,
            "load_average": os.getloadavg()[0], "cpu_count": os.cpu_count(),
            "onnxruntime": ort.__version__, "torch": torch.__version__}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    os.replace(tmp, out.with_suffix(".json"))
    lines = ["| crop | pooled | D | torch eager search ms | torch trunk ms | ORT search ms | ORT trunk ms | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['crop_size']} | {r['pooled']}x{r['pooled']} | {r['embedding_dim']} | {r['torch_eager_ms']} | "
              f"{r['torch_trunk_ms']} | {r['ort_search_ms']} | {r['ort_trunk_ms']} | "
              f"{r['torch_eager_ms'] / r['ort_search_ms']:.1f}x |" for r in rows]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(f"SINT search network, {NUM_CANDIDATES} rois, {args.threads} threads, {meta['date']}, "
                   f"load average {meta['load_average']:.1f}\n\n" + "\n".join(lines) + "\n")
    os.replace(tmp, out.with_suffix(".md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
