"""``python -m edge.models.train_classifier --calibrate``: make the trained classifiers' scores mean what they say.

On the **validation** split only (generated clips over VAL real sources, VAL real footage, synthetic noise):

1. temperature scaling (``edge.classify.decision.fit_temperature``), ECE before/after (val and test);
2. three open-set rules (max calibrated probability, energy, distance to class centroids in logit space; the
   centroids and scales from the training split), each with the threshold that keeps 95 % of the correctly
   classified validation clips; compared by how much pure noise and VAL real footage they reject and how
   many alarm-qualifying windows remain; the best on validation is shipped;
3. the alarm rules of ``edge/data/alarms.json`` replayed on validation streams (an action somewhere inside a
   longer clip, windows every ``stride`` frames, the runtime's hysteresis): event recall per class and false
   alarms on streams without that action;
4. per alarm class, the operating point (``enter``, ``start``) fitted on validation (:func:`fit_alarm_bars`:
   the highest recall that starts nothing on validation negatives, with ``--calib-splits val,val_faults`` the
   streams and the VAL real footage through the camera faults too). Reported beside the shipped rules, not
   applied: on held-back footage those points raised false alarms (``edge/weights/classifier.md``, round 5).

Test clips (labelled, generated over VAL + HELD_BACK sources) are only reported: top-1 with Wilson intervals and
the paired McNemar test two-in-one vs no-flow at the deployed window. Held-back real footage is never read here
(the false-alarm benchmark is ``bench/classifier_alarms.py`` / ``edge bench``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from edge.classify import decision as dec
from edge.classify.preprocess import FrameStream, clip_inputs
from edge.data import real_sources
from edge.data.actions import CLASSES, CLIP_FPS, make_clip
from edge.models.train_classifier import (build_split, clip_logits, log, mcnemar_exact, needs_low,
                                          paired_bootstrap, pair_accuracy, wilson_interval)
from edge.models.two_in_one import TwoInOne, build_classifier, load_checkpoint, save_checkpoint

STRIDE = 4                 # the runtime's default: window // 2
TPR = 0.95                 # open-set thresholds keep this share of correctly classified validation clips
STREAM_FRAMES = 25
SEEDS = {"noise": 901, "streams": 902, "real_faults": 904}


@torch.no_grad()
def split_logits(model: TwoInOne, data: dict, bs: int = 24) -> np.ndarray:
    model.eval()
    n = len(data["label"])
    return torch.cat([clip_logits(model, data, torch.arange(i, min(n, i + bs))) for i in range(0, n, bs)]).numpy()


@torch.no_grad()
def stream_logits(model: TwoInOne, frames, stride: int = STRIDE) -> np.ndarray:
    """The runtime's streaming protocol in PyTorch: continuous DIS flow, encoder per frame, a window of T
    features every ``stride`` frames (first once T are there), ConvLSTM from zero -> logits [W, K]."""
    cfg = model.cfg
    prep = FrameStream(cfg.size, bound=cfg.flow_bound)
    feats = []
    for f in frames:
        rgb, flow = prep(f)
        feats.append(model.encoder(torch.from_numpy(rgb), torch.from_numpy(flow))[0])
    t = cfg.clip_len
    ends = list(range(t - 1, len(frames), stride))
    if not ends:
        return np.zeros((0, len(cfg.classes)))
    wins = torch.stack([torch.cat(feats[e - t + 1:e + 1]) for e in ends])
    return model.run_steps(wins).numpy()


@torch.no_grad()
def clip_forward(model: TwoInOne, clip: np.ndarray) -> np.ndarray:
    """Logits [K] of one clip (T + 1 frames) through the model's own forward."""
    rgb, flow = clip_inputs(clip, model.cfg.size, bound=model.cfg.flow_bound)
    return model.eval()(torch.from_numpy(rgb)[None], torch.from_numpy(flow)[None])[0].numpy()


def noise_clips(n: int = 48, frames: int = 9, size: int = 160, seed: int = SEEDS["noise"]) -> list[np.ndarray]:
    """Pure noise, nothing else: i.i.d. Gaussian frames, one static noise image with sensor noise, coloured
    blocks that flicker."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            c = rng.normal(rng.uniform(60, 190), rng.uniform(20, 70), (frames, size, size, 3))
        elif kind == 1:
            base = rng.uniform(0, 255, (size, size, 3))
            c = base[None] + rng.normal(0, 4, (frames, size, size, 3))
        else:
            blocks = rng.uniform(0, 255, (frames, size // 16, size // 16, 3))
            c = np.stack([np.kron(b, np.ones((16, 16, 1))) for b in blocks])
        out.append(np.clip(c, 0, 255).astype(np.uint8))
    return out


def val_real_streams(sample_fps: float | None = CLIP_FPS) -> dict[str, list[np.ndarray]]:
    """The VAL real videos as streams: the frames the runtime's classifier sees (``edge.classify.sampling``
    at ``sample_fps`` by the video's own timestamps), one stream per phase of the model's clock against the
    video's frames (``NAME@k``: sampling starts at frame k), so a short video still gives several windows."""
    import threading

    from edge.classify.sampling import FrameSampler
    from edge.stream.sources import open_source
    out = {}
    for s in real_sources.videos("val"):
        src = open_source(str(real_sources.video_path(s)))        # edge run's reader: its frames and timestamps
        try:
            frames = list(src.frames(threading.Event()))
        finally:
            src.close()
        phases = max(1, int(round(src.fps / sample_fps))) if sample_fps else 1
        for k in range(phases):
            sampler = FrameSampler(sample_fps)
            out[f"{s}@{k}" if phases > 1 else s] = [img for img, ts, _ in frames[k:] if sampler(ts)]
    return out


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a negative (OOD) > score of a positive (ID)), ties half: higher = better separation."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    gt = (neg[:, None] > pos[None, :]).mean()
    eq = (neg[:, None] == pos[None, :]).mean()
    return float(gt + 0.5 * eq)


def fit_ood_rules(train_logits, train_labels, val_logits, val_labels, temperature: float) -> dict[str, dec.OODRule]:
    """Each rule with the threshold accepting TPR of the correctly classified validation clips."""
    k = len(CLASSES)
    cent = np.stack([train_logits[train_labels == c].mean(0) for c in range(k)])
    scale = train_logits.std(0) + 1e-6
    ok = val_logits.argmax(1) == val_labels
    rules = {}
    for name in ("max_prob", "energy", "centroid"):
        proto = dec.OODRule(name, 0.0, tuple(map(tuple, cent)) if name == "centroid" else None,
                            tuple(scale) if name == "centroid" else None)
        s = proto.score(val_logits[ok], temperature)
        rules[name] = dec.OODRule(name, float(np.quantile(s, TPR)), proto.centroids, proto.scale)
    return rules


def alarm_windows(decider: dec.Decider, logits: np.ndarray) -> int:
    """Windows that would count towards an alarm start (alarm class, calibrated p >= start, not rejected)."""
    n = 0
    for z in logits:
        d = decider.decide(z)
        r = decider.rules.get(d.label) if decider.rules else None
        n += int(bool(r and r.alarm and d.score >= r.start))
    return n


def replay(decider: dec.Decider, logits: np.ndarray, stride: int = STRIDE, t: int = 8) -> list:
    """Hysteresis events of one stream's window logits (window w ends at frame t - 1 + w * stride)."""
    h = decider.hysteresis()
    ev = []
    for w, z in enumerate(logits):
        d = decider.decide(z)
        ev += h.update(d.label, d.score, t - 1 + w * stride)
    return ev + h.close(t - 1 + max(len(logits) - 1, 0) * stride)


def evaluate_model(name: str, model: TwoInOne, data: dict, extra: dict, fit: tuple[str, ...] = ("val",)) -> dict:
    """Calibration, open-set comparison and alarm-rule replay of one model (see the module doc). Temperature
    and open-set thresholds are fitted on the ``fit`` splits together (``val``, or ``val`` + ``val_faults``:
    the deployment's mix of clean and faulty cameras); ``val`` in what follows means them."""
    t0 = time.time()
    lg = {s: split_logits(model, v) for s, v in data.items()}
    lab = {s: v["label"].numpy() for s, v in data.items()}
    lg["val_clean"], lab["val_clean"] = lg["val"], lab["val"]
    lg["val"], lab["val"] = np.concatenate([lg[s] for s in fit]), np.concatenate([lab[s] for s in fit])
    temp = dec.fit_temperature(lg["val"], lab["val"])
    reported = ["val"] + (["val_clean"] if fit != ("val",) else []) + [
        s for s in ("val_faults", "test", "test_faults") if s in lg]
    ece = {s: {"before": dec.expected_calibration_error(dec.softmax(lg[s]), lab[s]),
               "after": dec.expected_calibration_error(dec.softmax(lg[s], temp), lab[s]),
               "nll_before": dec.nll(lg[s], lab[s]), "nll_after": dec.nll(lg[s], lab[s], temp)}
           for s in reported}
    log(f"{name}: T = {temp:.3f} (fitted on {'+'.join(fit)}); ECE " + ", ".join(
        f"{s} {ece[s]['before']:.3f} -> {ece[s]['after']:.3f}" for s in reported))
    noise = np.stack([clip_forward(model, c) for c in extra["noise"]])
    real = {s: stream_logits(model, f) for s, f in extra["real"].items()}
    real_all = np.concatenate(list(real.values()))
    rules = fit_ood_rules(lg["train"], lab["train"], lg["val"], lab["val"], temp)
    alarms = dec.load_alarm_rules(None, CLASSES)
    ok_test = lg["test"].argmax(1) == lab["test"]
    comparison = {}
    for rname, rule in [("none", dec.OODRule())] + list(rules.items()):
        d = dec.Decider(CLASSES, dec.Calibration(temp, rule), alarms)
        rej = lambda z: np.asarray(rule.reject(z, temp), bool) if rule.rule != "none" else np.zeros(len(z), bool)  # noqa: E731
        comparison[rname] = {
            "threshold": rule.threshold,
            "val_correct_accepted": float(1 - rej(lg["val"][lg["val"].argmax(1) == lab["val"]]).mean()),
            "test_correct_accepted": float(1 - rej(lg["test"][ok_test]).mean()),
            "test_top1_after_rule": float((ok_test & ~rej(lg["test"])).mean()),
            "noise_rejected": float(rej(noise).mean()),
            "noise_alarm_windows": alarm_windows(d, noise),
            "val_real_windows": int(len(real_all)),
            "val_real_rejected": float(rej(real_all).mean()) if len(real_all) else None,
            "val_real_alarm_windows": alarm_windows(d, real_all),
            "auroc_test_correct_vs_noise": (auroc(rule.score(lg["test"][ok_test], temp), rule.score(noise, temp))
                                            if rule.rule != "none" else None)}
        log(f"{name} rule {rname}: " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                                   for k, v in comparison[rname].items()}))
    # the shipped rule: most noise rejected at the fixed validation acceptance, then fewest real alarm windows
    best = max(rules, key=lambda r: (comparison[r]["noise_rejected"], -comparison[r]["val_real_alarm_windows"],
                                     comparison[r]["auroc_test_correct_vs_noise"] or 0))
    cal = dec.Calibration(temp, rules[best])
    decider = dec.Decider(CLASSES, cal, alarms)
    # alarm rules on validation streams (an action inside a longer clip) and on VAL real footage
    stream_lg = list(extra_streams(model, extra))
    per_class = stream_recall(decider, stream_lg)
    real_events = {src: [e for e in replay(decider, z) if e.type == "action_start"] for src, z in real.items()}
    sweep = threshold_sweep(cal, alarms, stream_lg, real, noise)
    log(f"{name}: alarm-bar sweep on validation " + json.dumps(sweep))
    bars = fit_alarm_bars(cal, alarms, stream_lg, real, noise)
    log(f"{name}: alarm bars fitted on validation " + json.dumps(bars))
    acc = float(ok_test.mean())
    conf = np.zeros((len(CLASSES), len(CLASSES)), int)
    np.add.at(conf, (lab["test"], lg["test"].argmax(1)), 1)
    log(f"{name}: shipped rule {best}; streams " + json.dumps(per_class) + f" ({time.time() - t0:.0f} s)")
    return {"temperature": temp, "ece": ece, "ood_comparison": comparison, "ood_rule": best,
            "calibration": cal.to_config(), "val_streams": per_class, "alarm_bar_sweep": sweep,
            "alarm_bars_fitted": bars,
            "val_real_events": {s: [(e.label, e.frame) for e in ev] for s, ev in real_events.items()},
            "test": {"top1": acc, "n": int(len(ok_test)), "ci95": wilson_interval(int(ok_test.sum()), len(ok_test)),
                     "pairs": pair_accuracy(conf), "confusion": conf.tolist()},
            "val_top1": float((lg["val_clean"].argmax(1) == lab["val_clean"]).mean()),
            "_ok_test": ok_test}


def stream_recall(decider: dec.Decider, stream_lg: list) -> dict:
    """Per class: streams, event recall (a start of the stream's own class), wrong alarms (alarm starts of
    another class) over validation streams ``[(label, window logits)]``."""
    streams = []
    for label, logits in stream_lg:
        ev = [e for e in replay(decider, logits) if e.type == "action_start"]
        streams.append({"label": label, "starts": [e.label for e in ev], "alarms": [e.label for e in ev if e.alarm]})
    per_class = {}
    for c in CLASSES:
        s = [x for x in streams if x["label"] == c]
        per_class[c] = {"streams": len(s), "recall": float(np.mean([c in x["starts"] for x in s])) if s else None,
                        "false_alarms": int(sum(sum(1 for a in x["alarms"] if a != c) for x in s))}
    return per_class


SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9)
BAR_GRID = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
ENTERS = (1, 2)


def class_starts(decider: dec.Decider, logits: np.ndarray, label: str) -> int:
    """Starts of events of class ``label`` in one stream's window logits (the runtime's hysteresis)."""
    return sum(1 for e in replay(decider, logits) if e.type == "action_start" and e.label == label)


def fit_alarm_bars(cal: dec.Calibration, alarms: dict, stream_lg: list, real: dict, noise: np.ndarray,
                   grid: tuple = BAR_GRID, enters: tuple = ENTERS) -> dict:
    """Per alarm class, the operating point (``enter`` windows in a row at ``start`` or more; ``end`` capped at
    ``start``; every other class's rule as shipped) with the highest event recall on the class's own validation
    streams among those at which validation data without that action starts none of its events: validation
    streams of the other classes, the VAL real footage (clean and through each camera fault) and noise clips
    (each a single window: none may reach ``start`` as that class, whatever ``enter``). Ties go to the more
    cautious point (more windows, then the higher bar). Returns per class the fitted point (None when none on
    the grid is quiet) and the shipped one, each with its recall and negatives. Validation data only;
    reported beside ``edge/data/alarms.json``'s rules, not written into it (see the module doc)."""
    from dataclasses import replace
    out = {}
    for c in dec.alarm_classes(alarms):
        own = [z for lab, z in stream_lg if lab == c]
        others = [z for lab, z in stream_lg if lab != c]

        def measure(bar: float, enter: int) -> dict:
            rules = {**alarms, c: replace(alarms[c], start=bar, end=min(alarms[c].end, bar), enter=enter)}
            d = dec.Decider(CLASSES, cal, rules)
            recall = float(np.mean([class_starts(d, z, c) > 0 for z in own])) if own else None
            return {"bar": bar, "enter": enter, "recall": recall,
                    "wrong_starts": sum(class_starts(d, z, c) for z in others),
                    "val_real_starts": sum(class_starts(d, z, c) for z in real.values()),
                    "noise_windows": sum(1 for r in map(d.decide, noise) if r.label == c and r.score >= bar)}
        quiet = [m for m in (measure(b, e) for e in enters for b in grid)
                 if m["wrong_starts"] == m["val_real_starts"] == m["noise_windows"] == 0]
        fitted = max(quiet, key=lambda m: (m["recall"] or 0.0, m["enter"], m["bar"])) if quiet else None
        out[c] = {"fitted": fitted, "shipped": measure(alarms[c].start, alarms[c].enter)}
    return out


def threshold_sweep(cal: dec.Calibration, alarms: dict, stream_lg: list, real: dict, noise: np.ndarray) -> dict:
    """The alarm classes' ``start`` bar set to each value of SWEEP (``end`` capped at it; enter/exit kept), on
    validation data only: mean event recall over the alarm classes, wrong alarm starts on the validation
    streams, alarm starts on the VAL real footage and alarm windows on noise. What the shipped bars are chosen
    from (edge/weights/classifier.md)."""
    from dataclasses import replace
    out = {}
    for bar in SWEEP:
        rules = {c: (replace(r, start=bar, end=min(r.end, bar)) if r.alarm else r) for c, r in alarms.items()}
        d = dec.Decider(CLASSES, cal, rules)
        pc = stream_recall(d, stream_lg)
        out[str(bar)] = {
            "recall": {c: pc[c]["recall"] for c in dec.alarm_classes(rules)},
            "mean_alarm_recall": float(np.mean([pc[c]["recall"] for c in dec.alarm_classes(rules)])),
            "wrong_alarms_streams": int(sum(v["false_alarms"] for v in pc.values())),
            "val_real_alarm_starts": int(sum(1 for z in real.values() for e in replay(d, z)
                                             if e.type == "action_start" and e.alarm)),
            "noise_alarm_windows": alarm_windows(d, noise)}
    return out


def faulty_copies(frames: list[np.ndarray], seed: int) -> dict[str, list[np.ndarray]]:
    """One copy of a real stream per camera fault of ``edge.data.degrade`` (each fault forced on, its
    parameters drawn from ``seed``; ``rotate`` turns the frames of any shape a quarter turn)."""
    from edge.data import degrade
    clip = np.stack(frames)
    out = {"rotate": [np.ascontiguousarray(np.rot90(f, 1 + 2 * (seed % 2))) for f in frames]}
    for k, name in enumerate(n for n in degrade.FAULTS if n != "rotate"):
        rng = np.random.default_rng([SEEDS["real_faults"], seed, k])
        out[name] = list(degrade.degrade_clip(clip, rng, {name: 1.0})[0])
    return out


def extra_streams(model: TwoInOne, extra: dict):
    for label, frames in extra["streams"]:
        yield label, stream_logits(model, frames)


def calibrate_and_ship(args, out: Path, noflow_out: Path, cache: Path | None) -> int:
    """``--calibrate``: fit, compare, replay; write calibration into both checkpoints and the note."""
    t_all = time.time()
    fit = tuple(x.strip() for x in getattr(args, "calib_splits", "val").split(",") if x.strip())
    if fit not in (("val",), ("val", "val_faults")):
        raise SystemExit(f"--calib-splits must be val or val,val_faults, got {','.join(fit)!r}")
    models = {"flow": build_classifier(out, use_flow=True), "noflow": build_classifier(noflow_out, use_flow=False)}
    splits = [("train", args.train), ("val", args.val), ("test", args.test)]
    if "val_faults" in fit:
        splits += [("val_faults", args.val), ("test_faults", args.test)]
    data = {s: build_split(models["noflow"], s, n, cache, needs_low(models["flow"].cfg)) for s, n in splits}
    stream_set = []
    for i in range(args.val_streams):
        label = CLASSES[i % len(CLASSES)]
        stream_set.append((label, make_clip(np.random.SeedSequence([SEEDS["streams"], i]), label, STREAM_FRAMES,
                                            160, "val")))
    real = val_real_streams(models["flow"].cfg.sample_fps)
    if "val_faults" in fit:      # the deployment's mix: the same streams and VAL footage through camera faults
        stream_set += [(label, make_clip(np.random.SeedSequence([SEEDS["streams"], i]), label, STREAM_FRAMES, 160,
                                         "val", degraded=True))
                       for i, (label, _) in enumerate(list(stream_set))]
        real.update({f"{name}~{fault}": fr for k, (name, frames) in enumerate(list(real.items()))
                     for fault, fr in faulty_copies(frames, k).items()})
    extra = {"noise": noise_clips(), "real": real, "streams": stream_set}
    log(f"data ready ({time.time() - t_all:.0f} s): {len(extra['noise'])} noise clips, "
        f"{len(stream_set)} val streams, real val footage {list(extra['real'])}")
    res = {name: evaluate_model(name, m, data, extra, fit) for name, m in models.items()}
    a, b = res["noflow"].pop("_ok_test"), res["flow"].pop("_ok_test")
    only_noflow, only_flow, p = mcnemar_exact(a, b)
    lo, hi = paired_bootstrap(a, b)
    paired = {"diff": float(b.mean() - a.mean()), "boot95": [lo, hi], "only_noflow": only_noflow,
              "only_flow": only_flow, "mcnemar_p": p, "window": models["flow"].cfg.clip_len}
    log("two-in-one - no flow on test: " + json.dumps(paired))
    for name, path in (("flow", out), ("noflow", noflow_out)):
        _, meta = load_checkpoint(path)
        meta.pop("config", None)
        meta["calibration"] = res[name]["calibration"]
        meta["evaluation"] = {k: v for k, v in res[name].items() if k != "calibration"}
        meta["evaluation"]["paired_vs_other"] = paired
        meta["accuracy"] = {"test_top1": res[name]["test"]["top1"], "val_top1": res[name]["val_top1"]}
        meta["calibrated_by"] = "python -m edge.models.train_classifier --calibrate " + \
            f"--out {out} --train {args.train} --val {args.val} --test {args.test} --calib-splits {','.join(fit)}"
        models[name].meta = meta
        save_checkpoint(models[name], path, meta)
    record = {"results": res, "paired": paired, "seconds": round(time.time() - t_all, 1),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    note = Path(args.note or out.with_suffix(".md"))
    rec_path = note.with_suffix(".calibration.json")
    rec_path.write_text(json.dumps(record, indent=1, default=float))
    write_note(note, record, {k: m.meta for k, m in models.items()})
    log(f"wrote calibration into {out}, {noflow_out}; record {rec_path} ({time.time() - t_all:.0f} s)")
    return 0


def write_note(path: Path, record: dict, metas: dict) -> None:
    """The tables of ``--calibrate`` as Markdown (the recipe and held-back results are added by hand)."""
    res, paired = record["results"], record["paired"]
    names = {"flow": "two-in-one (`classifier.pt`)", "noflow": "no flow (`classifier_noflow.pt`)"}
    f3 = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["## Validation-fitted calibration, open-set rule and alarm rules (`--calibrate`)", "",
             f"{record['date']}, {record['seconds']:.0f} s. Everything below is fitted or chosen on the validation "
             "split (generated clips over VAL sources, VAL real footage, synthetic noise); test clips are only "
             "reported.", "",
             "| model | test top-1 (95 % Wilson) | val top-1 | take/put_back | idle/pass_by | sit_down/fall | "
             "best epoch / epochs | train s |", "|---|---|---|---|---|---|---|---|"]
    for k in ("flow", "noflow"):
        r = res[k]       # the last training run: a continued checkpoint's own, not the one it started from
        tr = (metas[k].get("continued") or {}).get("record") or metas[k].get("training", {})
        p = r["test"]["pairs"]
        lines.append(f"| {names[k]} | **{r['test']['top1']:.3f}** [{r['test']['ci95'][0]:.3f}, "
                     f"{r['test']['ci95'][1]:.3f}] (n = {r['test']['n']}) | {r['val_top1']:.3f} | "
                     f"{p['take/put_back']:.3f} | {p['idle/pass_by']:.3f} | {p['sit_down/fall']:.3f} | "
                     f"{tr.get('best_epoch', '?')} / {tr.get('epochs_run', '?')} | {tr.get('train_seconds', 0):.0f} |")
    lines += ["", f"Paired on the same {res['flow']['test']['n']} test clips at the deployed window T = "
              f"{paired['window']}: two-in-one - no flow = {paired['diff']:+.3f} (95 % bootstrap "
              f"[{paired['boot95'][0]:+.3f}, {paired['boot95'][1]:+.3f}]); only no-flow right "
              f"{paired['only_noflow']}, only two-in-one right {paired['only_flow']}; exact McNemar p = "
              f"{paired['mcnemar_p']:.3g}.", "",
              "Confusion of the two-in-one model on the test clips (rows true, columns predicted; "
              + ", ".join(CLASSES) + "): `" + json.dumps(res["flow"]["test"]["confusion"]) + "`", "",
              "### Calibration (temperature scaling on the validation split)", "",
              "| model | T | ECE val before -> after | ECE test before -> after | NLL test before -> after |",
              "|---|---|---|---|---|"]
    for k in ("flow", "noflow"):
        e = res[k]["ece"]
        lines.append(f"| {names[k]} | {res[k]['temperature']:.3f} | {e['val']['before']:.3f} -> "
                     f"**{e['val']['after']:.3f}** | {e['test']['before']:.3f} -> **{e['test']['after']:.3f}** | "
                     f"{e['test']['nll_before']:.3f} -> {e['test']['nll_after']:.3f} |")
    lines += ["", "ECE: 15 equal-width confidence bins, top label.", "",
              "### Open-set rule: which one works (threshold keeps 95 % of the correctly classified validation clips)",
              "", "| model | rule | threshold | test correct kept | test top-1 after rule | noise clips rejected | "
              "AUROC test-correct vs noise | VAL real windows rejected | VAL real alarm windows | noise alarm windows |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for k in ("flow", "noflow"):
        for rule, c in res[k]["ood_comparison"].items():
            mark = " (shipped)" if rule == res[k]["ood_rule"] else ""
            lines.append(f"| {names[k]} | {rule}{mark} | {f3(c['threshold'])} | {c['test_correct_accepted']:.3f} | "
                         f"{c['test_top1_after_rule']:.3f} | {c['noise_rejected']:.3f} | "
                         f"{f3(c['auroc_test_correct_vs_noise'])} | {f3(c['val_real_rejected'])} | "
                         f"{c['val_real_alarm_windows']} / {c['val_real_windows']} | {c['noise_alarm_windows']} |")
    lines += ["", "Noise: 48 clips of pure noise (i.i.d. Gaussian frames, a static noise image, flickering colour "
              "blocks). VAL real windows: the VAL real videos streamed as `edge run` does (frames sampled at the model's "
              "clock, `sample_fps`, one stream per phase of that clock; a window every 4 sampled frames). "
              "An alarm window: the decision is an alarm class with calibrated probability >= its `start` in "
              "`edge/data/alarms.json`. Choice: most noise rejected, then fewest VAL real alarm windows, then AUROC.",
              "", "### Alarm rules replayed on validation streams (25 frames, the action somewhere inside; "
              "windows every 4 frames, the shipped rules and hysteresis)", "",
              "| class | streams | two-in-one: event recall | two-in-one: wrong alarms | no flow: event recall | "
              "no flow: wrong alarms |", "|---|---|---|---|---|---|"]
    for c in CLASSES:
        a, b = res["flow"]["val_streams"][c], res["noflow"]["val_streams"][c]
        lines.append(f"| {c} | {a['streams']} | {f3(a['recall'])} | {a['false_alarms']} | {f3(b['recall'])} | "
                     f"{b['false_alarms']} |")
    lines += ["", "### Alarm bar on validation (the alarm classes' `start` set to one value; validation streams and "
              "VAL real footage only)", "",
              "| model | start | take | put_back | sit_down | fall | mean alarm recall | wrong alarms (streams) | "
              "alarm starts on VAL real footage | noise alarm windows |", "|---|---|---|---|---|---|---|---|---|---|"]
    for k in ("flow", "noflow"):
        for bar, r in res[k].get("alarm_bar_sweep", {}).items():
            rc = r["recall"]
            lines.append(f"| {names[k]} | {bar} | " + " | ".join(f3(rc.get(c)) for c in ("take", "put_back",
                         "sit_down", "fall")) + f" | {r['mean_alarm_recall']:.3f} | {r['wrong_alarms_streams']} | "
                         f"{r['val_real_alarm_starts']} | {r['noise_alarm_windows']} |")
    lines += ["", "### Alarm rules fitted on validation (per class: among `enter` in "
              f"{ENTERS} and `start` on {BAR_GRID[0]}..{BAR_GRID[-1]}, the highest recall at which no validation "
              "stream of another class, no VAL real stream (clean and through each camera fault) and no noise "
              "starts an event of it; ties to more windows, then the higher bar)", "",
              "| model | class | fitted enter / start | its recall | shipped enter / start | shipped recall | "
              "shipped: wrong starts / VAL real starts / noise |", "|---|---|---|---|---|---|---|"]
    for k in ("flow", "noflow"):
        for c, r in res[k].get("alarm_bars_fitted", {}).items():
            fit_, sh = r["fitted"], r["shipped"]
            point = f"{fit_['enter']} / {fit_['bar']:.2f}" if fit_ else "none quiet"
            lines.append(f"| {names[k]} | {c} | {point} | {f3(fit_ and fit_['recall'])} | "
                         f"{sh['enter']} / {sh['bar']:.2f} | {f3(sh['recall'])} | {sh['wrong_starts']} / "
                         f"{sh['val_real_starts']} / {sh['noise_windows']} |")
    def events(k: str) -> str:
        ev = {src: e for src, e in res[k]["val_real_events"].items() if e}
        return json.dumps(ev) if ev else f"none in {len(res[k]['val_real_events'])} streams"
    lines += ["", f"Events on the VAL real footage (streamed, clean and through each camera fault): two-in-one "
              f"{events('flow')}; no flow {events('noflow')}", ""]
    text = path.read_text() if path.is_file() else ""
    marker = "## Validation-fitted calibration"
    head = text.split(marker)[0].rstrip("\n")
    tail = ""
    if marker in text and "\n## " in text.split(marker, 1)[1]:
        tail = "\n## " + text.split(marker, 1)[1].split("\n## ", 1)[1]
    atomic = path.with_suffix(".md.tmp")
    atomic.write_text((head + "\n\n" if head else "") + "\n".join(lines) + tail.rstrip("\n") + "\n")
    atomic.replace(path)
