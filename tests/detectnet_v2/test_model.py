"""The GridBox model: TAO's shapes, heads and export outputs."""

from __future__ import annotations

import pytest
import torch

from visionops.models.detectnet_v2.model import PRESETS, DetectNetExport, DetectNetV2, check_input_size


def test_dashcamnet_preset_has_the_cards_shapes():
    preset = PRESETS["dashcamnet"]
    model = DetectNetV2(len(preset.class_names), preset.arch).eval()
    width, height = preset.input_size
    cov, bbox = model(torch.zeros(1, 3, height, width))
    assert cov.shape == (1, 4, 34, 60) and bbox.shape == (1, 16, 34, 60)
    assert all(block.downsample is not None for layer in ("layer1", "layer2", "layer3", "layer4")
               for block in getattr(model.backbone, layer))
    # ResNet-18 trunk + 1x1 heads; TAO convs also carry biases, ours follow torchvision (no conv bias before BN)
    params = sum(p.numel() for p in model.parameters())
    assert 11_000_000 < params < 12_500_000


def test_heads_start_from_zero_bias_and_predict_gives_probabilities():
    model = DetectNetV2(3).eval()
    assert torch.count_nonzero(model.output_cov.bias) == 0 and torch.count_nonzero(model.output_bbox.bias) == 0
    cov, bbox = model.predict(torch.rand(2, 3, 64, 96))
    assert cov.shape == (2, 3, 4, 6) and bbox.shape == (2, 12, 4, 6)
    assert cov.min() >= 0 and cov.max() <= 1
    exported_cov, exported_bbox = DetectNetExport(model)(torch.rand(2, 3, 64, 96))
    assert exported_cov.shape == cov.shape and exported_bbox.shape == bbox.shape


def test_input_size_must_be_a_multiple_of_16():
    assert check_input_size(960, 544) == (60, 34)
    with pytest.raises(ValueError, match="multiples of 16, got 960x540 .*960x544"):
        check_input_size(960, 540)
    with pytest.raises(ValueError, match="num_classes"):
        DetectNetV2(0)
