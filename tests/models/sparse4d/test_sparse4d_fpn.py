"""FPN: level sizes for the card's 960x540 input and size-based (not factor-2) top-down upsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionops.models.backbones.resnet import ResNet
from visionops.models.necks import FPN

CARD_LEVELS = [(135, 240), (68, 120), (34, 60), (17, 30)]


def test_backbone_levels_for_540_input_on_meta():
    with torch.device("meta"):
        backbone = ResNet(18, out_indices=(1, 2, 3, 4))
        maps = backbone(torch.empty(2, 3, 540, 960))
    assert [tuple(m.shape[-2:]) for m in maps] == CARD_LEVELS


def test_fpn_level_sizes_and_channels_for_540_input():
    torch.manual_seed(0)
    channels = [3, 5, 7, 9]
    fpn = FPN(channels, out_channels=4, num_outs=4)
    inputs = [torch.randn(1, c, h, w) for c, (h, w) in zip(channels, CARD_LEVELS, strict=True)]
    outs = fpn(inputs)
    assert [tuple(o.shape) for o in outs] == [(1, 4, h, w) for h, w in CARD_LEVELS]
    assert sum(h * w for h, w in CARD_LEVELS) == 43_110  # positions per camera, as in the brief


def test_fpn_top_down_matches_manual_nearest_to_size():
    torch.manual_seed(0)
    channels = [2, 3, 4, 5]
    fpn = FPN(channels, out_channels=3).eval()
    inputs = [torch.randn(1, c, h, w) for c, (h, w) in zip(channels, [(9, 16), (5, 8), (3, 4), (2, 2)], strict=True)]
    lat = [conv(x) for conv, x in zip(fpn.lateral_convs, inputs, strict=True)]
    p4 = lat[3]
    p3 = lat[2] + F.interpolate(p4, size=(3, 4), mode="nearest")
    p2 = lat[1] + F.interpolate(p3, size=(5, 8), mode="nearest")
    p1 = lat[0] + F.interpolate(p2, size=(9, 16), mode="nearest")
    expected = [conv(p) for conv, p in zip(fpn.fpn_convs, [p1, p2, p3, p4], strict=True)]
    for got, want in zip(fpn(inputs), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_fpn_extra_levels_on_output():
    fpn = FPN([2, 3], out_channels=4, num_outs=4)
    outs = fpn([torch.randn(1, 2, 16, 16), torch.randn(1, 3, 8, 8)])
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (4, 4), (2, 2)]
