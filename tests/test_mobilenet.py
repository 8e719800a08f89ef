"""The offline ImageNet MobileNetV2: every key loads, and it recognises a real photo."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.assets import mobilenet_v2_weights
from edge.models.mobilenet_v2 import (IMAGENET_MEAN, IMAGENET_STD, MobileNetV2, load_state_dict_file,
                                      mobilenet_v2_imagenet)


def test_every_imagenet_key_loads():
    state = load_state_dict_file(mobilenet_v2_weights())
    model = MobileNetV2()
    own = model.state_dict()
    assert set(state) == set(own)                                     # no missing, no unexpected key
    assert all(state[k].shape == own[k].shape for k in state)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_corrupt_checkpoint_one_line_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError) as e:
        load_state_dict_file(bad)
    assert "\n" not in str(e.value) and "bad.pth" in str(e.value)


def test_top1_on_a_real_photo_is_a_cat():
    import cv2
    import skimage.data
    img = skimage.data.chelsea()                                      # RGB, a tabby cat
    h, w = img.shape[:2]
    s = 256 / min(h, w)
    img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    y0, x0 = (img.shape[0] - 224) // 2, (img.shape[1] - 224) // 2
    x = img[y0:y0 + 224, x0:x0 + 224].astype(np.float32) / 255.0
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core machine: OpenMP spinning makes 2 threads slower
    try:
        with torch.no_grad():
            logits = mobilenet_v2_imagenet()(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))
    finally:
        torch.set_num_threads(threads)
    top1 = int(logits.argmax())
    probs = torch.softmax(logits, 1)[0]
    assert 281 <= top1 <= 285, f"top-1 class {top1} is not a domestic cat (281-285)"
    assert float(probs[281:286].sum()) > 0.5
