"""Train the two-in-one classifier's new parts on generated action clips (backbone frozen).

    python -m edge.models.train_classifier --out edge/weights/classifier.pt [--stage noflow|flow] [--mod-stage 3|6]

Data: the fixed train/val/test splits of ``edge.data.actions`` preprocessed exactly as the runtime does
(``edge.classify.preprocess.clip_inputs``: DIS flow between consecutive frames). What the frozen backbone
computes is cached once per clip: stage-3 features (input of the motion modulation), stage-6 features and
the CAM of the unmodulated RGB stream. Two models are trained with the same recipe:

1. **no flow** (ablation, ``use_flow=False``): reduction + CAM temperature + ConvLSTM + head;
2. **two-in-one**: starts from the no-flow model's trained parts and adds the motion-condition branch
   (trained together with all new parts; gradients run through the frozen stages 4..6).

Each model trains with a cosine LR over its wall-clock budget (``--time-budget-noflow``, ``--time-budget``); the
best validation epoch is kept. Writes the two-in-one checkpoint (``--out``) and the no-flow one
(``--noflow-out``), uncalibrated; then ``--calibrate`` (``edge.models.classifier_calibration``) fits temperature
and open-set rule on the validation split, replays the alarm rules on validation streams, reports the test
split (top-1, paired McNemar test) and writes them into both checkpoints and the Markdown note.

Data splits (``edge.data.actions``): train clips use only the training real sources, val the validation ones
(``edge.data.real_sources``); held-back real footage is never read by training or calibration. ``train_faults``,
``val_faults`` and ``test_faults`` are the same clips through the camera faults of ``edge.data.degrade``
(``--train-splits``, ``--val-splits``, ``--compare-split``, ``--calib-splits``). ``--prepare-cache
K/N`` fills the cache with N processes.

``--resume --resume-out P`` continues training the saved ``--out`` checkpoint (cosine LR over ``--time-budget``
seconds of wall clock; ``--window-lengths 1,2,4,8`` trains each batch on the last k frames, k drawn per batch,
and selects the epoch by mean validation accuracy over those k); ``--compare name=path:flow|noflow ...`` compares checkpoints on ``--test`` clips, paired
(Wilson intervals, exact McNemar test, paired bootstrap). How the committed checkpoint was made: its ``.md``.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge.classify.preprocess import clip_inputs
from edge.data import actions, degrade
from edge.data.actions import CLASSES
from edge.models.two_in_one import TAP_STAGE, ClassifierConfig, TwoInOne, save_checkpoint

CACHE_VERSION = 4   # 4: edge.data.actions v2 (none class, real-source pools, camera), int8 flow


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


CHUNK = 60  # clips per cache file


@torch.no_grad()
def _build_chunk(model: TwoInOne, split: str, start: int, stop: int) -> dict[str, torch.Tensor]:
    from edge.data.actions import split_clip
    cfg, enc = model.cfg, model.encoder.eval()
    out = {k: [] for k in ("low", "flow", "tap", "cam", "label")}
    for i in range(start, stop):
        label, clip = split_clip(split, i, cfg.clip_len + 1, cfg.size)
        rgb, flow = clip_inputs(clip, cfg.size, bound=cfg.flow_bound)
        out["label"].append(CLASSES.index(label))
        _append_frames(enc, out, rgb, flow)
    return {k: torch.stack(v) if k != "label" else torch.tensor(v) for k, v in out.items()}


def _append_frames(enc, out: dict, rgb: np.ndarray, flow: np.ndarray) -> None:
    """Frozen-backbone tensors of T frames (rgb [T,3,S,S], encoded flow [T,2,S,S]) appended to ``out``."""
    low = enc.low_features(torch.from_numpy(rgb))
    tap = enc.mid(low)
    out["low"].append(low.half())
    out["tap"].append(tap.half())
    out["cam"].append(enc.cam(tap))
    out["flow"].append(torch.from_numpy(np.round(np.clip(flow, -1, 1) * 127).astype(np.int8)))


def _flow(t: torch.Tensor) -> torch.Tensor:
    """Cached flow (int8, 1/127 steps) -> float in [-1, 1]."""
    return t.float() / 127.0 if t.dtype == torch.int8 else t.float()


def needs_low(cfg: ClassifierConfig) -> bool:
    """Whether training ``cfg``'s model reads the cached stage-3 features (only a stage-3 motion modulation)."""
    return cfg.use_flow and cfg.mod_stage != TAP_STAGE


def build_split(model: TwoInOne, split: str | list[str], count: int, cache: Path | None,
                keep_low: bool = True, shard: tuple[int, int] | None = None) -> dict[str, torch.Tensor] | None:
    """Generated clips (``edge.data.actions`` split, runtime preprocessing) -> frozen-backbone tensors:
    stage-3 features, encoded flow, stage-6 features (fp16) and the CAM; cached in chunks of CHUNK clips.
    A list of splits gives their ``count`` clips each, one after the other (filled into tensors allocated once:
    the peak is the result plus one chunk). ``keep_low=False`` leaves the stage-3 features out of the result
    (unused when the modulation sits on stage 6, and half the memory of a split); the cache files always hold
    them. ``shard=(k, n)`` only makes the missing cache files of every n-th chunk, starting at chunk k, and
    returns None (``--prepare-cache k/n``: one process per core)."""
    cfg = model.cfg
    out: dict[str, torch.Tensor] = {}
    splits = [split] if isinstance(split, str) else list(split)
    total, done, t0 = count * len(splits), 0, time.time()
    for name in splits:
        parts = [CACHE_VERSION, cfg.size, cfg.clip_len, cfg.flow_bound]
        if name in actions.DEGRADED_SPLITS:        # the camera faults change the clips (not the clean splits' key)
            parts.append(["degrade", degrade.VERSION, sorted(degrade.FAULTS.items())])
        key = hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:10]
        for start in range(0, count, CHUNK):
            stop = min(count, start + CHUNK)
            path = cache / f"{name}_{start}_{stop}_{key}.pt" if cache else None
            cached = path is not None and path.is_file()
            if shard is not None and ((start // CHUNK) % shard[1] != shard[0] or cached):
                continue                                   # another share's chunk, or made already
            if cached:
                chunk = torch.load(path, weights_only=True)
            else:
                chunk = _build_chunk(model, name, start, stop)
                log(f"{name}: {stop}/{count} clips ({time.time() - t0:.0f} s)")
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(chunk, str(path) + ".tmp")
                    Path(str(path) + ".tmp").replace(path)
            if shard is not None:
                continue
            for k, v in chunk.items():
                if k == "low" and not keep_low:
                    continue
                if k not in out:
                    out[k] = torch.empty((total, *v.shape[1:]), dtype=v.dtype)
                out[k][done:done + len(v)] = v
            done += stop - start
            del chunk
    return None if shard is not None else out


def clip_logits(model: TwoInOne, batch: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    """Logits of clips ``idx`` from the cached tensors (same math as ``model.forward``)."""
    enc = model.encoder
    cam = batch["cam"][idx].flatten(0, 1)
    b, t = len(idx), batch["cam"].shape[1]
    if model.cfg.use_flow and model.cfg.mod_stage == TAP_STAGE:
        tap = enc.modulate(batch["tap"][idx].flatten(0, 1).float(), _flow(batch["flow"][idx].flatten(0, 1)))
    elif model.cfg.use_flow:
        low = batch["low"][idx].flatten(0, 1).float()
        flow = _flow(batch["flow"][idx].flatten(0, 1))
        tap = enc.mid(enc.modulate(low, flow))
    else:
        tap = batch["tap"][idx].flatten(0, 1).float()
    feats, _ = enc.head(tap, cam)
    return model.run_steps(feats.unflatten(0, (b, t)))


@torch.no_grad()
def evaluate(model: TwoInOne, data: dict[str, torch.Tensor], bs: int = 32) -> tuple[float, np.ndarray]:
    """(accuracy, confusion matrix [true, pred])."""
    model.eval()
    n = len(data["label"])
    preds = torch.cat([clip_logits(model, data, torch.arange(i, min(n, i + bs))).argmax(1)
                       for i in range(0, n, bs)])
    k = len(CLASSES)
    conf = np.zeros((k, k), int)
    for t, p in zip(data["label"].tolist(), preds.tolist()):
        conf[t, p] += 1
    return float(np.trace(conf) / max(1, n)), conf


def last_frames(data: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """View of the cached tensors keeping only the last ``k`` time steps of every clip (labels unchanged)."""
    t = data["cam"].shape[1]
    if not 1 <= k <= t:
        raise ValueError(f"window length {k} outside 1..{t}")
    return {key: (v[:, t - k:] if key != "label" else v) for key, v in data.items()}


def window_val_accuracy(model: TwoInOne, data: dict[str, torch.Tensor], lengths) -> float:
    """Mean accuracy over the window lengths ``lengths`` (each window stepped from the zero state)."""
    return float(np.mean([evaluate(model, last_frames(data, k))[0] for k in lengths]))


# Time reversal: a reversed clip of these classes is a clip of the class they map to (``put_back`` is ``take``
# reversed by construction; ``none``, ``idle``, ``pass_by`` stay what they are). ``sit_down`` / ``fall`` reversed
# are a person getting up, which no class describes: never reversed.
REVERSED = {"none": "none", "idle": "idle", "pass_by": "pass_by", "take": "put_back", "put_back": "take"}
_REV_LABEL = torch.tensor([CLASSES.index(REVERSED[c]) if c in REVERSED else -1 for c in CLASSES])


def reverse_time(batch: dict[str, torch.Tensor], flip: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cached tensors of a batch of clips [B, T, ...] with the clips where ``flip`` is True played backwards.

    Per-frame backbone tensors (``low``, ``tap``, ``cam``) are reversed exactly. Flow step t of a clip is the
    DIS flow from frame t-1 to frame t; backwards, the frame of original step t is reached from frame t+1, whose
    flow is about the negated forward flow of step t+1 (the last frame, the first one backwards, reuses the
    negated flow of its own step: frame T+1 is not cached). Labels map through ``REVERSED``; clips of classes
    that have no reversed class must not be flipped."""
    labels = batch["label"]
    if bool((flip & (_REV_LABEL[labels] < 0)).any()):
        raise ValueError("reverse_time: a clip of a class without a reversed class was asked to flip")
    out = dict(batch)
    t = batch["cam"].shape[1]
    for key in ("low", "tap", "cam"):
        if key in batch:
            v = batch[key]
            out[key] = torch.where(flip.view(-1, *([1] * (v.dim() - 1))), v.flip(1), v)
    if "flow" in batch:
        v = batch["flow"]
        src = torch.tensor([min(t - k, t - 1) for k in range(t)])      # backwards step k <- forward step t-k
        out["flow"] = torch.where(flip.view(-1, *([1] * (v.dim() - 1))), -v[:, src], v)
    out["label"] = torch.where(flip, _REV_LABEL[labels], labels)
    return out


def _train_batch(model: TwoInOne, opt: torch.optim.Optimizer, train_data, idx: torch.Tensor,
                 reverse_prob: float = 0.0, gen: torch.Generator | None = None) -> float:
    """One optimiser step on the clips ``idx`` (each reversible clip played backwards with probability
    ``reverse_prob``, see :func:`reverse_time`); returns the summed loss of the batch."""
    if reverse_prob > 0:
        sub = {k: v[idx] for k, v in train_data.items()}
        flip = (torch.rand(len(idx), generator=gen) < reverse_prob) & (_REV_LABEL[sub["label"]] >= 0)
        train_data, idx = reverse_time(sub, flip), torch.arange(len(idx))
    loss = F.cross_entropy(clip_logits(model, train_data, idx), train_data["label"][idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach()) * len(idx)


@torch.no_grad()
def window_accuracy(model: TwoInOne, data: dict[str, torch.Tensor], lengths=(1, 2, 4, 8), bs: int = 24) -> dict:
    """Test accuracy (overall and per motion pair) when only the last k frames of each clip are stepped from
    the zero state: how much each model can decide from short windows (k = 1: one frame and its flow)."""
    model.eval()
    n, t = len(data["label"]), data["cam"].shape[1]
    out = {}
    for k in lengths:
        sub = {key: (v[:, t - k:] if key != "label" else v) for key, v in data.items()}
        preds = torch.cat([clip_logits(model, sub, torch.arange(i, min(n, i + bs))).argmax(1)
                           for i in range(0, n, bs)])
        conf = np.zeros((len(CLASSES), len(CLASSES)), int)
        for a, b in zip(data["label"].tolist(), preds.tolist()):
            conf[a, b] += 1
        out[str(k)] = {"acc": float(np.trace(conf) / n), "pairs": pair_accuracy(conf)}
    return out


def eval_only(out: Path, noflow_out: Path, test_count: int, cache: Path | None) -> int:
    """Window-length evaluation of two saved checkpoints; appends it to the note and the checkpoints' meta."""
    from edge.models.two_in_one import build_classifier, load_checkpoint
    models = {"noflow": build_classifier(noflow_out, use_flow=False), "flow": build_classifier(out, use_flow=True)}
    data = build_split(models["flow"], "test", test_count, cache)
    res = {name: window_accuracy(m, data) for name, m in models.items()}
    for name, r in res.items():
        log(f"{name}: " + json.dumps(r))
    lines = ["", "## Short windows (test split, last k frames stepped from zero state)", "",
             "Both models were trained on 8-step windows; k = 1 is one frame with its flow.", "",
             "| k | no flow acc | two-in-one acc | no flow take/put_back | two-in-one take/put_back | "
             "no flow sit_down/fall | two-in-one sit_down/fall |", "|---|---|---|---|---|---|---|"]
    for k in res["flow"]:
        a, b = res["noflow"][k], res["flow"][k]
        lines.append(f"| {k} | {a['acc']:.3f} | {b['acc']:.3f} | {a['pairs']['take/put_back']:.3f} | "
                     f"{b['pairs']['take/put_back']:.3f} | {a['pairs']['sit_down/fall']:.3f} | "
                     f"{b['pairs']['sit_down/fall']:.3f} |")
    note = out.with_suffix(".md")
    text = note.read_text() if note.is_file() else ""
    text = text.split("\n## Short windows")[0].rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    tmp = note.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(note)
    for name, path in (("noflow", noflow_out), ("flow", out)):
        _, meta = load_checkpoint(path)
        meta.pop("config", None)
        meta["window_accuracy"] = {"noflow": res["noflow"], "flow": res["flow"]}
        save_checkpoint(models[name], path, meta)
    return 0


def continue_training(model: TwoInOne, train_data, val_data, lr: float, bs: int, seed: int, tag: str,
                      time_budget: float, max_epochs: int = 1000, window_lengths: tuple[int, ...] | None = None,
                      reverse_prob: float = 0.0) -> dict:
    """More training of a trained model with a cosine LR over the wall-clock budget (per batch), so the LR reaches
    zero when the budget is spent whatever the machine load; keeps the best-validation state (the starting
    state counts as epoch 0). ``val_data``: one split, or a list whose mean accuracy selects (e.g. val and
    val_faults: clean and faulty cameras count alike). With ``window_lengths`` each batch uses the last k
    frames of its clips, k drawn uniformly per batch, and validation is the mean accuracy over those k.
    ``reverse_prob``: time-reversal augmentation (:func:`reverse_time`)."""
    val_sets = val_data if isinstance(val_data, list) else [val_data]
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=5e-3)
    n = len(train_data["label"])
    views = {k: last_frames(train_data, k) for k in window_lengths} if window_lengths else None

    def val_score() -> float:
        return float(np.mean([window_val_accuracy(model, v, window_lengths) if window_lengths
                              else evaluate(model, v)[0] for v in val_sets]))

    best = (val_score(), copy.deepcopy(model.trained_state()), 0)
    log(f"{tag} start: val {best[0]:.3f}")
    t_start, history, done = time.time(), [], False
    for ep in range(max_epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        total, seen, t0 = 0.0, 0, time.time()
        for i in range(0, n, bs):
            frac = (time.time() - t_start) / time_budget
            if frac >= 1.0:
                done = True
                break
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
            idx = perm[i:i + bs]
            if views:
                k = window_lengths[int(torch.randint(len(window_lengths), (1,), generator=g))]
                total += _train_batch(model, opt, views[k], idx, reverse_prob, g)
            else:
                total += _train_batch(model, opt, train_data, idx, reverse_prob, g)
            seen += len(idx)
        val_acc = val_score()
        history.append({"epoch": ep + 1, "clips": seen, "loss": total / max(1, seen), "val_acc": val_acc})
        log(f"{tag} epoch {ep + 1} ({seen}/{n} clips): loss {total / max(1, seen):.3f}  val {val_acc:.3f}  "
            f"({time.time() - t0:.0f} s)")
        if val_acc > best[0]:
            best = (val_acc, copy.deepcopy(model.trained_state()), ep + 1)
        if done or time.time() - t_start >= time_budget:
            break
    model.load_state_dict(best[1], strict=False)
    return {"best_val_acc": best[0], "best_epoch": best[2], "epochs_run": len(history),
            "train_seconds": round(time.time() - t_start, 1), "history": history}


def resume(args) -> int:
    """``--resume``: continue training the saved ``--out`` (two-in-one) checkpoint on the cached train split;
    writes to ``--resume-out`` (the committed files are not touched)."""
    from edge.models.two_in_one import build_classifier, load_checkpoint
    t_all = time.time()
    model = build_classifier(args.out, use_flow=args.resume_variant == "flow")
    if args.flow_centre and not model.cfg.flow_centre:     # same trained parts, the camera's motion taken out
        import dataclasses
        centred = TwoInOne(dataclasses.replace(model.cfg, flow_centre=True))
        centred.load_state_dict(model.trained_state(), strict=False)
        centred.meta, model = model.meta, centred.eval()
    cache = Path(args.cache) if args.cache else None

    def names(text: str) -> list[str]:
        return [s.strip() for s in text.split(",") if s.strip()]
    train = build_split(model, names(args.train_splits), args.train, cache, needs_low(model.cfg))
    vals = [build_split(model, s, args.val, cache, needs_low(model.cfg)) for s in names(args.val_splits)]
    log(f"data ready ({time.time() - t_all:.0f} s): train {args.train_splits} ({len(train['label'])} clips), "
        f"selection on the mean of {args.val_splits}")
    torch.manual_seed(args.seed)
    rec = continue_training(model, train, vals, args.lr, args.batch, args.seed + 2,
                            args.resume_variant, args.time_budget, args.resume_max_epochs,
                            parse_lengths(args.window_lengths) if args.window_lengths else None,
                            args.reverse_prob)
    _, meta = load_checkpoint(args.out)
    meta.pop("config", None)
    meta["continued"] = {"from": str(args.out), "command": "python -m edge.models.train_classifier "
                         + " ".join(sys.argv[1:]), "lr": args.lr, "window_lengths": args.window_lengths,
                         "train_splits": args.train_splits, "val_splits": args.val_splits,
                         "record": rec,
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    save_checkpoint(model, args.resume_out, meta)
    log(f"wrote {args.resume_out}: best val {rec['best_val_acc']:.3f} at epoch {rec['best_epoch']}")
    return 0


def parse_lengths(text: str) -> tuple[int, ...]:
    """``"1,2,4,8"`` -> (1, 2, 4, 8); a clear error for anything else."""
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"window lengths must be comma-separated integers, got {text!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"window lengths must be positive integers, got {text!r}")
    return out


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of an accuracy ``hits / n``."""
    if n == 0:
        return 0.0, 1.0
    p, d = hits / n, 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    # exact at hits = 0 or n, where c -/+ h is 0 or 1 up to rounding
    return max(0.0, min(c - h, p)), min(1.0, max(c + h, p))


def mcnemar_exact(first_ok: np.ndarray, second_ok: np.ndarray) -> tuple[int, int, float]:
    """Paired test of two classifiers on the same clips: (clips only the first gets right, only the second,
    two-sided exact binomial p-value on those discordant clips)."""
    b, c = int((first_ok & ~second_ok).sum()), int((~first_ok & second_ok).sum())
    n = b + c
    p = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n if n else 1.0
    return b, c, min(1.0, 2 * p)


def paired_bootstrap(first_ok: np.ndarray, second_ok: np.ndarray, reps: int = 10000, seed: int = 0):
    """95 % bootstrap interval (clips resampled, pairs kept) of accuracy(second) - accuracy(first)."""
    from edge.eval.paired import mean_difference_interval
    return mean_difference_interval(np.asarray(second_ok, np.float64) - np.asarray(first_ok, np.float64),
                                    reps=reps, seed=seed)


def compare(specs: list[str], count: int, cache: Path | None, windows=(8, 4), fresh_from: int = 120,
            split: str = "test") -> dict:
    """``--compare``: checkpoints ``name=path:flow|noflow`` on test clips 0..count-1 (last k frames for each k
    in ``windows``): accuracy with Wilson intervals (all clips and clips >= ``fresh_from``, which no earlier
    run evaluated), pair accuracies, confusion, and paired McNemar / bootstrap comparisons of every pair.
    ``split="test_faults"``: the same clips through the training camera faults (robustness, paired with test)."""
    from edge.models.two_in_one import build_classifier
    models = {}
    for spec in specs:
        name, rest = spec.split("=", 1)
        path, variant = rest.rsplit(":", 1)
        models[name] = build_classifier(path, use_flow=variant == "flow")
    data = build_split(next(iter(models.values())), split, count, cache)
    labels, t = data["label"].numpy(), data["cam"].shape[1]
    subsets = {"all": slice(0, count), f"test {fresh_from}..{count - 1}": slice(fresh_from, count)}
    out: dict = {"count": count, "split": split, "models": {}, "paired": {}}
    ok = {}
    for k in windows:
        sub = {key: (v[:, t - k:] if key != "label" else v) for key, v in data.items()}
        for name, model in models.items():
            model.eval()
            with torch.no_grad():
                pred = torch.cat([clip_logits(model, sub, torch.arange(i, min(count, i + 24))).argmax(1)
                                  for i in range(0, count, 24)]).numpy()
            ok[name, k] = pred == labels
            conf = np.zeros((len(CLASSES), len(CLASSES)), int)
            np.add.at(conf, (labels, pred), 1)
            rec = {s: {"acc": float(ok[name, k][sl].mean()), "n": len(ok[name, k][sl]),
                       "ci95": wilson_interval(int(ok[name, k][sl].sum()), len(ok[name, k][sl]))}
                   for s, sl in subsets.items()}
            out["models"][f"{name} k={k}"] = {**rec, "pairs": pair_accuracy(conf), "confusion": conf.tolist()}
            log(f"k={k} {name}: " + "  ".join(f"{s} {r['acc']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] "
                                              f"n={r['n']}" for s, r in rec.items())
                + "  pairs " + json.dumps({a: round(b, 3) for a, b in pair_accuracy(conf).items()}))
        names = list(models)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for s, sl in subsets.items():
                    only_a, only_b, p = mcnemar_exact(ok[a, k][sl], ok[b, k][sl])
                    lo, hi = paired_bootstrap(ok[a, k][sl], ok[b, k][sl])
                    diff = float(ok[b, k][sl].mean() - ok[a, k][sl].mean())
                    out["paired"][f"{b} - {a} k={k} {s}"] = {"diff": diff, "boot95": [lo, hi], "only_first": only_a,
                                                             "only_second": only_b, "mcnemar_p": p}
                    log(f"k={k} {s}: {b} - {a} = {diff:+.3f} (95 % [{lo:+.3f}, {hi:+.3f}]), only {a} right "
                        f"{only_a}, only {b} right {only_b}, McNemar exact p = {p:.3g}")
    return out


def pair_accuracy(conf: np.ndarray) -> dict[str, float]:
    """Accuracy on each motion-defined pair: predictions restricted to the two classes of the pair."""
    out = {}
    for a, b in (("take", "put_back"), ("idle", "pass_by"), ("sit_down", "fall")):
        ia, ib = CLASSES.index(a), CLASSES.index(b)
        sub = conf[np.ix_([ia, ib], [ia, ib])]
        out[f"{a}/{b}"] = float(np.trace(sub) / max(1, sub.sum()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="edge/weights/classifier.pt")
    ap.add_argument("--noflow-out", default=None, help="default: <out stem>_noflow.pt")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--test", type=int, default=480)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="/tmp/edge_classifier_cache", help="'' disables the cache")
    ap.add_argument("--eval-only", action="store_true",
                    help="only evaluate the saved --out/--noflow-out checkpoints on short test windows")
    ap.add_argument("--compare", nargs="+", metavar="NAME=PATH:flow|noflow", default=None,
                    help="paired test-split comparison of checkpoints on --test clips (JSON to --compare-json)")
    ap.add_argument("--compare-json", default=None)
    ap.add_argument("--compare-split", choices=("test", "test_faults"), default="test",
                    help="--compare on the clean test clips or on the same clips through the camera faults")
    ap.add_argument("--resume", action="store_true",
                    help="continue training the saved --out checkpoint (cosine LR over --time-budget)")
    ap.add_argument("--resume-out", default=None, help="where --resume writes the continued checkpoint")
    ap.add_argument("--resume-variant", choices=("flow", "noflow"), default="flow")
    ap.add_argument("--train-splits", default="train", metavar="S,S",
                    help="--resume: training splits, --train clips each (e.g. train,train_faults: the clips "
                         "without and with the camera faults)")
    ap.add_argument("--val-splits", default="val", metavar="S,S",
                    help="--resume: the epoch kept is the best mean accuracy over these splits (e.g. val,val_faults)")
    ap.add_argument("--resume-max-epochs", type=int, default=1000)
    ap.add_argument("--time-budget", type=float, default=1500.0,
                    help="seconds of training for the two-in-one model (cosine LR over it; --resume too)")
    ap.add_argument("--time-budget-noflow", type=float, default=480.0, help="seconds for the no-flow model")
    ap.add_argument("--mod-stage", type=int, choices=(3, 6), default=3,
                    help="backbone stage after which the motion modulation acts (3: low-level, 24 ch, stride 4, "
                         "gradients through frozen stages 4..6; 6: on the stage-6 features, no backbone gradients)")
    ap.add_argument("--flow-centre", action="store_true",
                    help="--resume: subtract each frame's mean flow before the motion branch (ClassifierConfig."
                         "flow_centre)")
    ap.add_argument("--reverse-prob", type=float, default=0.0,
                    help="time-reversal augmentation: each take/put_back/none/idle/pass_by training clip is played "
                         "backwards with this probability (take <-> put_back)")
    ap.add_argument("--stage", choices=("both", "noflow", "flow"), default="both",
                    help="train both models (default), only the no-flow model, or only the two-in-one model "
                         "warm-started from the saved --noflow-out checkpoint")
    ap.add_argument("--calibrate", action="store_true",
                    help="fit temperature + open-set rule of the saved --out/--noflow-out on the val split, "
                         "validate the alarm rules on val streams, write the tables (edge/weights/classifier.md)")
    ap.add_argument("--calib-splits", default="val", metavar="val[,val_faults]",
                    help="--calibrate: splits the temperature and open-set thresholds are fitted on together "
                         "(val,val_faults: clean and faulty cameras alike)")
    ap.add_argument("--val-streams", type=int, default=70,
                    help="--calibrate: validation streams (25 frames, an action inside) to replay the alarm rules on")
    ap.add_argument("--note", default=None, help="--calibrate: Markdown note to write (default: <out>.md)")
    ap.add_argument("--window-lengths", default=None, metavar="K,K,...",
                    help="--resume: train each batch on the last k frames (k drawn per batch from this list)")
    ap.add_argument("--prepare-cache", default=None, metavar="K/N",
                    help="only make the missing --cache files of the train/val/test splits and their *_faults "
                         "copies, chunks K, K+N, ... (run N processes, K = 0..N-1, one per core), then exit")
    ap.add_argument("--compare-windows", default="8,4", metavar="K,K,...",
                    help="--compare: window lengths (last k frames) to evaluate")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    noflow_out = Path(args.noflow_out) if args.noflow_out else out.with_name(out.stem + "_noflow.pt")
    cache = Path(args.cache) if args.cache else None
    if args.prepare_cache:
        return prepare_cache(args, cache)
    if args.compare:
        res = compare(args.compare, args.test, cache, windows=parse_lengths(args.compare_windows),
                      split=args.compare_split)
        if args.compare_json:
            tmp = Path(args.compare_json + ".tmp")
            tmp.write_text(json.dumps(res, indent=1))
            tmp.replace(args.compare_json)
        return 0
    if args.resume:
        if not args.resume_out:
            raise SystemExit("--resume needs --resume-out")
        return resume(args)
    if args.eval_only:
        return eval_only(out, noflow_out, args.test, cache)
    if args.calibrate:
        from edge.models.classifier_calibration import calibrate_and_ship
        return calibrate_and_ship(args, out, noflow_out, cache)
    return train_both(args, out, noflow_out, cache, argv)


def prepare_cache(args, cache: Path | None) -> int:
    """``--prepare-cache K/N``: this process's share of the cache files of train / val / test and their
    ``*_faults`` copies."""
    try:
        k, n = (int(x) for x in args.prepare_cache.split("/"))
        if not 0 <= k < n:
            raise ValueError
    except ValueError:
        raise SystemExit(f"--prepare-cache needs K/N with 0 <= K < N, got {args.prepare_cache!r}") from None
    if cache is None:
        raise SystemExit("--prepare-cache needs --cache")
    from edge.models.two_in_one import build_classifier
    model = build_classifier(args.out)     # its size / clip length / flow bound key the cache; backbone frozen
    counts = {"train": args.train, "val": args.val, "test": args.test}
    for split in (*counts, *actions.DEGRADED_SPLITS):
        build_split(model, split, counts[split.removesuffix("_faults")], cache, shard=(k, n))
    log(f"cache share {k}/{n} ready in {cache}")
    return 0


def train_both(args, out: Path, noflow_out: Path, cache: Path | None, argv) -> int:
    """The no-flow model from scratch, then the two-in-one model from its trained parts, each with a cosine LR
    over its wall-clock budget and the best validation epoch kept; both saved uncalibrated (``--calibrate``
    adds temperature, open-set rule and the tables). ``--stage noflow`` / ``flow`` runs one of the two (``flow``
    starts from the saved ``--noflow-out`` checkpoint), so each fits its own wall-clock budget."""
    t_all = time.time()
    torch.manual_seed(args.seed)
    base = TwoInOne(ClassifierConfig(use_flow=False))
    data = {s: build_split(base, s, n, cache, needs_low(ClassifierConfig(mod_stage=args.mod_stage)))
            for s, n in (("train", args.train), ("val", args.val))}
    log(f"data ready ({time.time() - t_all:.0f} s)")
    command = "python -m edge.models.train_classifier " + " ".join(argv if argv is not None else sys.argv[1:])
    common = {"seed": args.seed, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "data": "edge.data.actions v2 splits " + json.dumps({"train": args.train, "val": args.val}),
              "threads": args.threads, "reverse_prob": args.reverse_prob, "mod_stage": args.mod_stage}
    if args.stage in ("both", "noflow"):
        noflow = base
        rec = continue_training(noflow, data["train"], data["val"], args.lr, args.batch, args.seed, "noflow",
                                args.time_budget_noflow, reverse_prob=args.reverse_prob)
        log(f"noflow: best val {rec['best_val_acc']:.3f} at epoch {rec['best_epoch']}")
        _save(noflow, noflow_out, rec, {**common, "how_made": command, "variant": "no_flow"})
    else:
        from edge.models.two_in_one import build_classifier
        noflow = build_classifier(noflow_out, use_flow=False)
        log(f"flow starts from {noflow_out}")
    if args.stage in ("both", "flow"):
        torch.manual_seed(args.seed)
        flow = TwoInOne(ClassifierConfig(use_flow=True, mod_stage=args.mod_stage), backbone=None)
        # same trained parts; the motion-condition branch (unused by the no-flow model) starts at identity
        flow.load_state_dict({k: v for k, v in noflow.trained_state().items() if not k.startswith("encoder.mc.")},
                             strict=False)
        rec = continue_training(flow, data["train"], data["val"], args.lr / 2, args.batch, args.seed + 1, "flow",
                                args.time_budget, reverse_prob=args.reverse_prob)
        log(f"flow: best val {rec['best_val_acc']:.3f} at epoch {rec['best_epoch']}")
        how = command if args.stage == "both" else \
            f"{noflow.meta.get('how_made', '?')}; then {command}"
        _save(flow, out, rec, {**common, "how_made": how, "variant": "two_in_one",
                               "warm_start": str(noflow_out)})
    log(f"wrote {out if args.stage != 'noflow' else noflow_out} (uncalibrated; next: --calibrate)")
    del data
    build_split(base, "test", args.test, cache)      # cached for --calibrate (reported, never selected on)
    return 0


def _save(model: TwoInOne, path: Path, rec: dict, meta: dict) -> None:
    save_checkpoint(model, path, {**meta, "training_seconds": rec["train_seconds"],
                                  "training": {k: rec[k] for k in ("best_val_acc", "best_epoch", "epochs_run",
                                                                   "train_seconds", "history")}})


if __name__ == "__main__":
    raise SystemExit(main())
