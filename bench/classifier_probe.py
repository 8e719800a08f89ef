"""Does the shipped encoder's output carry what the ConvLSTM fails to read? Linear probes, one run.

    python bench/classifier_probe.py [--classifier ENGINE_DIR] [--train 1600] [--val 400] [--test 480]
                                     [--out bench/results]

Encoder features [T, C, h, w] of the fixed train / val / test splits (``edge.data.actions``; the test clips'
backgrounds are unseen) from the fp32 engine, then, against the shipped model's own decisions on the same
clips (its ``step`` engine from zero state, the runtime's loop):

- L2-regularised logistic regressions (LBFGS, standardised inputs, the strength chosen on validation) on the
  features pooled over space per step [T x C] and on 2x2-pooled space per step [T x C x h/2 x w/2], for the
  7 classes and for ``take`` vs ``put_back`` alone (the pair the shipped model cannot order).

A probe well above the model on a pair means the information is in the features and the temporal head misses
it; a probe no better means the encoder has to change. Writes ``classifier_probe.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402


def features(engines, split: str, n: int):
    from edge.classify.preprocess import clip_inputs
    from edge.data.actions import CLASSES, iter_split
    from edge.runtime.recurrent import unroll
    enc, step = engines["encoder"], engines["step"]
    size = engines.config.input_size
    X, y, own = [], [], []
    for _, label, clip in iter_split(split, n):
        rgb, flow = clip_inputs(clip, size)
        f = enc.run({"rgb": rgb, "flow": flow})["features"]
        X.append(f)
        y.append(CLASSES.index(label))
        own.append(int(np.argmax(unroll(step, f[None])[0])))
    return np.stack(X).astype(np.float32), np.array(y), np.array(own)


def probe(tr, va, te, ytr, yva, classes: int):
    """Best-on-validation logistic regression -> (val acc, test predictions, strength)."""
    import torch
    import torch.nn.functional as F
    mu, sd = tr.mean(0), tr.std(0) + 1e-6
    a, v, b = (torch.tensor((x - mu) / sd) for x in (tr, va, te))
    yt, yv = torch.tensor(ytr), torch.tensor(yva)
    best = None
    for wd in (1e-1, 1e-2, 1e-3):
        w = torch.zeros(a.shape[1], classes, requires_grad=True)
        bias = torch.zeros(classes, requires_grad=True)
        opt = torch.optim.LBFGS([w, bias], max_iter=300, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(a @ w + bias, yt) + wd * (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            acc = float(((v @ w + bias).argmax(1) == yv).float().mean())
            pred = (b @ w + bias).argmax(1).numpy()
        if best is None or acc > best[0]:
            best = (acc, pred, wd)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classifier", default=None, help="fp32 engine folder (default: export + build the shipped one)")
    ap.add_argument("--train", type=int, default=1600)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--test", type=int, default=480)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    import tempfile

    import torch
    import edge
    from edge.data.actions import CLASSES
    from edge.runtime import load_engines
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    eng_dir = args.classifier
    if eng_dir is None:
        work = Path(tempfile.mkdtemp(prefix="edge-probe-"))
        eng_dir = work / "classifier"
        edge.build(edge.export("classifier", work / "onnx").path, "cpu", "fp32", eng_dir)
    engines = load_engines(eng_dir, threads=args.threads)
    t0 = time.time()
    data = {s: features(engines, s, n) for s, n in (("train", args.train), ("val", args.val), ("test", args.test))}
    (Xtr, ytr, _), (Xva, yva, _), (Xte, yte, own) = data["train"], data["val"], data["test"]
    T, P = CLASSES.index("take"), CLASSES.index("put_back")

    def pair_acc(pred, y, mask):
        return float(np.mean(pred[mask] == y[mask]))

    h, w = Xtr.shape[-2:]
    reps = {"pooled space, per step [T x C]": lambda X: X.mean((3, 4)).reshape(len(X), -1),
            "2x2-pooled space, per step [T x C x h/2 x w/2]": lambda X: X[..., :h // 2 * 2, :w // 2 * 2].reshape(
                *X.shape[:3], h // 2, 2, w // 2, 2).mean((4, 6)).reshape(len(X), -1)}
    pair_te = (yte == T) | (yte == P)
    m_tr, m_va = (ytr == T) | (ytr == P), (yva == T) | (yva == P)
    rows = [{"readout": "shipped ConvLSTM step (c_T pooled -> linear)", "val_top1": None,
             "test_top1": round(float(np.mean(own == yte)), 3),
             "test_take_vs_put_back (7-class decision)": round(pair_acc(own, yte, pair_te), 3),
             "test_take_vs_put_back (binary)": None}]
    for name, f in reps.items():
        a, v, b = f(Xtr), f(Xva), f(Xte)
        va7, pred7, wd7 = probe(a, v, b, ytr, yva, len(CLASSES))
        vab, predb, wdb = probe(a[m_tr], v[m_va], b[pair_te], (ytr[m_tr] == P).astype(np.int64),
                                (yva[m_va] == P).astype(np.int64), 2)
        rows.append({"readout": f"linear probe, {name}", "val_top1": round(va7, 3),
                     "test_top1": round(float(np.mean(pred7 == yte)), 3),
                     "test_take_vs_put_back (7-class decision)": round(pair_acc(pred7, yte, pair_te), 3),
                     "test_take_vs_put_back (binary)": round(float(np.mean(predb == (yte[pair_te] == P))), 3),
                     "l2": {"7-class": wd7, "binary": wdb}})
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "engines": str(eng_dir),
            "clips": {"train": args.train, "val": args.val, "test": args.test}, "seconds": round(time.time() - t0, 1),
            "feature_shape": list(Xtr.shape[1:])}
    out = Path(args.out)
    atomic_write_json(out / "classifier_probe.json", {"meta": meta, "rows": rows})
    cols = ["val_top1", "test_top1", "test_take_vs_put_back (7-class decision)", "test_take_vs_put_back (binary)"]
    md = [f"# Linear probes on the classifier encoder's features ({meta['date']}, features {meta['feature_shape']}, "
          f"{args.train} / {args.val} / {args.test} clips)", "",
          "| readout | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    md += [f"| {r['readout']} | " + " | ".join("—" if r[c] is None else f"{r[c]:.3f}" for c in cols) + " |" for r in rows]
    atomic_write_bytes(out / "classifier_probe.md", ("\n".join(md) + "\n").encode())
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
