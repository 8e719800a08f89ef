"""Two-in-one stream classifier (edge.models.two_in_one): streaming split, state reset, CAM attention,
the flow ablation, checkpoints."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge.models.mobilenet_v2 import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2_imagenet
from edge.models.two_in_one import (ClassifierConfig, TwoInOne, build_classifier, config, load_checkpoint,
                                    networks, save_checkpoint)

SIZE = 96


@pytest.fixture(scope="module")
def backbone():
    return mobilenet_v2_imagenet()


def make_model(backbone, rng, use_flow=True, size=SIZE, mod_stage=3) -> TwoInOne:
    torch.manual_seed(int(rng.integers(0, 2**31)))
    m = TwoInOne(ClassifierConfig(size=size, use_flow=use_flow, mod_stage=mod_stage), backbone=copy.deepcopy(backbone))
    with torch.no_grad():   # non-trivial modulation and head (gamma/beta start at zero)
        for p in list(m.encoder.mc.gamma.parameters()) + list(m.encoder.mc.beta.parameters()):
            p.copy_(torch.from_numpy(rng.normal(0, 0.05, tuple(p.shape)).astype(np.float32)))
        bn = m.encoder.reduce[1]
        bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.1, bn.num_features).astype(np.float32)))
    return m.eval()


def inputs(rng, b, t, size=SIZE):
    rgb = torch.from_numpy(rng.uniform(0, 255, (b, t, 3, size, size)).astype(np.float32))
    flow = torch.from_numpy(rng.uniform(-1, 1, (b, t, 2, size, size)).astype(np.float32))
    return rgb, flow


@pytest.mark.parametrize("mod_stage", [3, 6])
@torch.no_grad()
def test_step_by_step_equals_whole_clip(backbone, rng, mod_stage):
    m = make_model(backbone, rng, mod_stage=mod_stage)
    rgb, flow = inputs(rng, 2, 3)
    whole = m(rgb, flow)
    specs = networks(m)
    enc, step = specs["encoder"].module, specs["step"].module
    h = c = None
    for t in range(3):
        feats, att = enc(rgb[:, t], flow[:, t])
        if h is None:                                           # explicit reset: zeros of the state shape
            h = torch.zeros(2, m.cfg.hidden, *feats.shape[2:])
            c = torch.zeros_like(h)
        h, c, logits = step(feats, h, c)
    torch.testing.assert_close(logits, whole, rtol=1e-5, atol=1e-5)
    # a second call keeps no state from the first: one clip alone = the same clip in the batch
    torch.testing.assert_close(m(rgb[1:], flow[1:]), whole[1:], rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_state_is_explicit(backbone, rng):
    m = make_model(backbone, rng)
    rgb, flow = inputs(rng, 1, 1)
    feats, _ = m.encoder(rgb[:, 0], flow[:, 0])
    zero_h, zero_c = m.init_state(feats)
    assert not zero_h.any() and not zero_c.any() and zero_h.shape == (1, m.cfg.hidden, *feats.shape[2:])
    h1, c1, l1 = m.step(feats, zero_h, zero_c)
    h2, c2, l2 = m.step(feats, h1, c1)                          # carried state changes the result ...
    assert not torch.allclose(l1, l2)
    h3, c3, l3 = m.step(feats, zero_h, zero_c)                  # ... and a reset reproduces step one exactly
    torch.testing.assert_close(l3, l1, rtol=0, atol=0)
    assert not any(b.shape and "state" in n for n, b in m.named_buffers())


@torch.no_grad()
def test_attention_is_the_cam_of_the_top1_imagenet_class(backbone, rng):
    m = make_model(backbone, rng)
    rgb, flow = inputs(rng, 2, 1)
    _, att = m.encoder(rgb[:, 0], flow[:, 0])
    # independent: torchvision-layout MobileNetV2 forward on the normalised image
    x = (rgb[:, 0] / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    fmap = backbone.features(x)
    top1 = backbone(x).argmax(1)
    cam = torch.einsum("bkhw,bk->bhw", fmap, backbone.classifier[1].weight[top1])[:, None]
    g = SIZE // 16
    cam = F.interpolate(cam, size=(g, g), mode="bilinear", align_corners=False)
    ref = torch.softmax(cam.flatten(1) * m.encoder.log_temp.exp(), 1).view(2, 1, g, g)
    torch.testing.assert_close(att, ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(att.sum((2, 3)), torch.ones(2, 1))


@pytest.mark.parametrize("mod_stage", [3, 6])
@torch.no_grad()
def test_flow_conditions_the_features_only_with_the_mc_branch_on(backbone, rng, mod_stage):
    rgb, flow = inputs(rng, 1, 1)
    other = torch.from_numpy(rng.uniform(-1, 1, flow.shape).astype(np.float32))
    on = make_model(backbone, rng, use_flow=True, mod_stage=mod_stage)
    off = copy.deepcopy(on)
    off.encoder.use_flow = False
    f_on, a_on = on.encoder(rgb[:, 0], flow[:, 0])
    assert not torch.allclose(f_on, on.encoder(rgb[:, 0], other[:, 0])[0])
    f_off, a_off = off.encoder(rgb[:, 0], flow[:, 0])
    torch.testing.assert_close(f_off, off.encoder(rgb[:, 0], other[:, 0])[0], rtol=0, atol=0)
    torch.testing.assert_close(a_on, a_off)                     # attention comes from the RGB stream
    # gamma = beta = 0 is the same as switching the branch off
    with torch.no_grad():
        for conv in (on.encoder.mc.gamma, on.encoder.mc.beta):
            conv.weight.zero_()
            conv.bias.zero_()
    torch.testing.assert_close(on.encoder(rgb[:, 0], flow[:, 0])[0], f_off, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_centred_flow_ignores_the_cameras_own_motion(backbone, rng):
    """flow_centre: a uniform flow added to every pixel (the camera panning or shaking) leaves the encoder's
    output unchanged, the mean is taken per frame (not over the batch), and without it the same shift changes
    the features."""
    import dataclasses
    m = make_model(backbone, rng, mod_stage=6)
    centred = TwoInOne(dataclasses.replace(m.cfg, flow_centre=True), backbone=copy.deepcopy(backbone))
    centred.load_state_dict(m.state_dict())
    centred.eval()
    rgb, flow = inputs(rng, 2, 1)
    pan = torch.tensor([[0.3, -0.2], [-0.1, 0.25]]).view(2, 2, 1, 1)         # a different pan per frame
    f, _ = centred.encoder(rgb[:, 0], flow[:, 0])
    f_pan, _ = centred.encoder(rgb[:, 0], flow[:, 0] + pan)
    torch.testing.assert_close(f_pan, f, rtol=1e-5, atol=1e-5)
    zero_mean = flow[:, 0] - flow[:, 0].mean((2, 3), keepdim=True)          # by hand: what the branch sees
    torch.testing.assert_close(centred.encoder(rgb[:, 0], zero_mean)[0], f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.encoder(rgb[:, 0], zero_mean)[0], f, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(m.encoder(rgb[:, 0], flow[:, 0] + pan)[0], m.encoder(rgb[:, 0], flow[:, 0])[0],
                              atol=1e-4)
    assert not ClassifierConfig().flow_centre and config(centred)["flow"]["centred_in_network"] is True


@pytest.mark.parametrize("use_flow,mod_stage", [(False, 3), (True, 3), (True, 6)])
@torch.no_grad()
def test_training_on_cached_backbone_tensors_is_the_model_forward(backbone, rng, use_flow, mod_stage):
    """Training's cache (frozen-backbone tensors in fp16, flow in int8 steps) + clip_logits reproduce the
    model's own forward on the same clip, up to the cache's rounding."""
    from edge.models.train_classifier import _append_frames, clip_logits
    m = make_model(backbone, rng, use_flow=use_flow, mod_stage=mod_stage)
    rgb, flow = inputs(rng, 2, 3)
    flow = torch.round(flow * 127) / 127                        # exactly representable in the int8 cache
    out = {k: [] for k in ("low", "flow", "tap", "cam")}
    for b in range(2):
        _append_frames(m.encoder, out, rgb[b].numpy(), flow[b].numpy())
    cache = {k: torch.stack(v) for k, v in out.items()}
    got = clip_logits(m, cache, torch.arange(2))
    ref = m(rgb, flow)
    # fp16 rounding moves the logits by ~2e-5 of their range; dropping the modulation moves them by ~2e-2
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-3 * float(ref.abs().max()))


def test_modulation_stage_is_validated():
    with pytest.raises(ValueError, match="mod_stage must be one of"):
        ClassifierConfig(mod_stage=4)


def test_networks_and_config_contract(backbone, rng):
    m = make_model(backbone, rng)
    specs = networks(m)
    assert list(specs) == ["encoder", "step"]
    assert list(specs["encoder"].inputs) == ["rgb", "flow"] and specs["encoder"].outputs == ["features", "attention"]
    assert list(specs["step"].inputs) == ["features", "h", "c"]
    assert specs["step"].outputs == ["h_next", "c_next", "logits"]
    cfg = json.loads(json.dumps(config(m)))
    assert cfg["input_size"] == SIZE and cfg["classes"] == list(m.cfg.classes)
    # decision constants travel in the manifest: uncalibrated -> T = 1, no open-set rule; the alarm rules
    assert cfg["calibration"] == {"temperature": 1.0, "ood": {"rule": "none", "threshold": None}}
    assert set(cfg["alarms"]["classes"]) == set(m.cfg.classes) and cfg["alarms"]["classes"]["fall"]["alarm"]
    m.meta = {"calibration": {"temperature": 2.0, "ood": {"rule": "energy", "threshold": -3.0}}}
    assert config(m)["calibration"]["temperature"] == 2.0 and "calibration" not in config(m)["meta"]
    with torch.no_grad():
        feats, att = specs["encoder"].module(*specs["encoder"].inputs.values())
        h, c, logits = specs["step"].module(*specs["step"].inputs.values())
    assert list(feats.shape[1:]) == cfg["feature_shape"] and list(h.shape[1:]) == cfg["state_shape"]
    assert att.shape == (1, 1, *feats.shape[2:]) and logits.shape == (1, len(cfg["classes"]))


def test_checkpoint_round_trip_and_corrupt_files(backbone, rng, tmp_path):
    m = make_model(backbone, rng)
    path = tmp_path / "c.pt"
    save_checkpoint(m, path, {"seed": 1})
    raw = torch.load(path, weights_only=True)                   # plain weights_only load works
    assert not any(k.startswith(("encoder.low", "encoder.mid", "encoder.high", "encoder.cam_fc"))
                   for k in raw["state_dict"])
    assert raw["meta"]["config"]["size"] == SIZE
    m2 = build_classifier(path)
    rgb, flow = inputs(rng, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(m2(rgb, flow), m(rgb, flow))
    for name, payload in (("garbage.pt", bytes(rng.integers(0, 256, 300, dtype=np.uint8))),
                          ("truncated.pt", path.read_bytes()[:200])):
        bad = tmp_path / name
        bad.write_bytes(payload)
        with pytest.raises(ValueError) as e:
            build_classifier(bad)
        assert "\n" not in str(e.value) and name in str(e.value)
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a two-in-one checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        build_classifier(tmp_path / "missing.pt")


@torch.no_grad()
def test_cached_splits_concatenate_and_shards_fill_the_cache(backbone, rng, tmp_path, monkeypatch):
    """build_split over two splits = the two splits one after the other; --prepare-cache shards make exactly
    their chunks, and a later build reads them back instead of recomputing."""
    from edge.models import train_classifier as tc
    monkeypatch.setattr(tc, "CHUNK", 1)                         # one clip per cache file
    m = TwoInOne(ClassifierConfig(size=64, clip_len=2, use_flow=False), backbone=copy.deepcopy(backbone)).eval()
    for k in (0, 1):
        assert tc.build_split(m, ["val", "val_faults"], 2, tmp_path, shard=(k, 2)) is None
    files = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert len(files) == 4 and sum(f.startswith("val_faults_") for f in files) == 2
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.pt")}
    both = tc.build_split(m, ["val", "val_faults"], 2, tmp_path, keep_low=False)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.pt")} == stamp     # read, not rebuilt
    one, two = (tc.build_split(m, s, 2, None) for s in ("val", "val_faults"))
    assert "low" not in both and both["label"].tolist() == one["label"].tolist() + two["label"].tolist()
    for key in ("tap", "cam", "flow"):
        torch.testing.assert_close(both[key], torch.cat([one[key], two[key]]))
    assert not torch.equal(one["tap"], two["tap"])              # the faults changed what the backbone sees
