"""The training module runs the model in channels-last memory order; values and checkpoints do not change."""

from __future__ import annotations

import torch
from detectnet_factories import CLASSES, H, W

from visionops.models.detectnet_v2.model import DetectNetV2
from visionops.training.detectnet_module import DetectNetModule, DetectNetTrainConfig


def test_channels_last_changes_layout_not_values():
    torch.manual_seed(0)
    module = DetectNetModule(DetectNetTrainConfig(class_names=CLASSES, input_size=(W, H)), total_steps=1).eval()
    images = torch.rand(2, 3, H, W)
    with torch.no_grad():
        before = module.model(images)
    module.on_fit_start()
    conv_weights = [m.weight for m in module.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights if w.shape[-1] > 1)
    with torch.no_grad():
        after = module(images)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    # A checkpoint of the channels-last model loads into a plain (contiguous) one with the same outputs.
    fresh = DetectNetV2(len(CLASSES)).eval()
    fresh.load_state_dict(module.model.state_dict())
    with torch.no_grad():
        reloaded = fresh(images)
    for a, b in zip(after, reloaded, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
