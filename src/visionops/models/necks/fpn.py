"""Feature Pyramid Network (mmdet semantics, as Sparse4D configures it).

For backbone maps C2..C5 (strides 4, 8, 16, 32) every level gets a 1x1 lateral conv to ``out_channels``; a
top-down pass adds each coarser lateral, upsampled with nearest neighbour **to the exact size of the finer
level**, to the finer one; a 3x3 conv smooths each sum. Upsampling by size rather than by a factor 2 matters
because input heights like 540 are not multiples of 32: for a 960x540 image the levels are 240x135, 120x68,
60x34 and 30x17 (W x H), and 17 * 2 != 34 would not line up.

``num_outs`` larger than the number of used inputs adds extra levels (stride-2 3x3 convs on the last output,
mmdet's ``add_extra_convs="on_output"``); Sparse4D's config (``num_outs=4, start_level=0``) creates none.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class FPN(nn.Module):
    """Top-down feature pyramid.

    Args:
        in_channels: channels of each backbone map, finest first, e.g. ``[256, 512, 1024, 2048]``.
        out_channels: channels of every output level.
        num_outs: number of output levels (>= number of used inputs; extras are stride-2 convs).
        start_level: first backbone map used (mmdet's ``start_level``).
        relu_before_extra_convs: ReLU before every extra conv after the first (mmdet semantics).

    Attributes:
        lateral_convs: 1x1 convs, one per used input.
        fpn_convs: 3x3 convs, one per output level (extras included).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int | None = None,
        start_level: int = 0,
        relu_before_extra_convs: bool = True,
    ) -> None:
        super().__init__()
        in_channels = list(in_channels)
        if not 0 <= start_level < len(in_channels):
            raise ValueError(f"start_level must index in_channels ({len(in_channels)}), got {start_level}")
        used = len(in_channels) - start_level
        num_outs = used if num_outs is None else num_outs
        if num_outs < used:
            raise ValueError(f"num_outs ({num_outs}) must be >= the number of used inputs ({used})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.start_level, self.num_outs = start_level, num_outs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels[start_level:])
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in range(used))
        for _ in range(num_outs - used):
            self.fpn_convs.append(nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # mmdet's FPN init: Xavier uniform, zero bias
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """Backbone maps -> pyramid.

        Args:
            inputs: (N, in_channels[i], H_i, W_i) per backbone level, finest first.

        Returns:
            ``num_outs`` maps (N, out_channels, H_l, W_l); the first ones have the sizes of the used inputs.
        """
        if len(inputs) != len(self.in_channels):
            raise ValueError(f"FPN expects {len(self.in_channels)} inputs, got {len(inputs)}")
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs[self.start_level:], strict=True)]
        # Top-down, coarsest first; a new list instead of in-place `+=` keeps autograd and tracing simple.
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            merged.append(lateral + F.interpolate(merged[-1], size=lateral.shape[-2:], mode="nearest"))
        merged.reverse()
        outs = [conv(x) for conv, x in zip(self.fpn_convs, merged, strict=False)]
        for conv in self.fpn_convs[len(merged):]:
            x = outs[-1]
            if self.relu_before_extra_convs and len(outs) > len(merged):
                x = F.relu(x)
            outs.append(conv(x))
        return outs
