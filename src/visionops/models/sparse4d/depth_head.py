"""Dense depth auxiliary head (``DenseDepthNet``): per-pixel depth from the first FPN levels, training only.

One 1x1 conv (C -> 1) per level on the first ``num_depth_layers`` levels (the card: 3, strides 4/8/16):

    depth = exp(conv(F_l)) * focal / equal_focal          (metres)

The focal factor (fx of the *augmented* intrinsics over ``equal_focal`` = 100 px) lets the conv predict a
focal-independent quantity, so resized / zoomed cameras share it. The loss (L1 against valid GT depth clipped to
max_depth) lives with the other losses; this module only predicts. Not exported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

_MAX_LOG_DEPTH = math.log(1e4)


class DenseDepthNet(nn.Module):
    """FPN maps -> depth maps.

    Args:
        embed_dims: C of the FPN levels.
        num_depth_layers: levels with a depth conv, finest first.
        equal_focal: reference focal length (pixels).
        max_depth: depth clip of the loss (metres), kept here so the loss can read it.
    """

    def __init__(self, embed_dims: int = 256, num_depth_layers: int = 3, equal_focal: float = 100.0,
                 max_depth: float = 60.0) -> None:
        super().__init__()
        self.equal_focal, self.max_depth, self.num_depth_layers = equal_focal, max_depth, num_depth_layers
        self.depth_layers = nn.ModuleList(nn.Conv2d(embed_dims, 1, kernel_size=1) for _ in range(num_depth_layers))

    def forward(self, feature_maps: Sequence[Tensor], focal: Tensor | None = None) -> list[Tensor]:
        """Predict depth.

        Args:
            feature_maps: (B, Ncam, C, H_l, W_l) per level (only the first ``num_depth_layers`` are used).
            focal: (B, Ncam) fx in pixels of the network-input intrinsics; None = ``equal_focal`` (factor 1).

        Returns:
            ``num_depth_layers`` tensors (B * Ncam, 1, H_l, W_l), metres (the official layout the depth loss uses).
        """
        depths = []
        for conv, fm in zip(self.depth_layers, feature_maps[: self.num_depth_layers], strict=True):
            b, k = fm.shape[:2]
            # fp32: exp() of a bf16/fp16 logit is too coarse for a metric regression target. The cap keeps
            # exp finite (an overflow to inf turned into NaN gradients through the loss): 1e4 m is far past any
            # target, so in range the prediction is the official exp() unchanged.
            depth = conv(fm.flatten(0, 1).float()).clamp(max=_MAX_LOG_DEPTH).exp()  # (B * Ncam, 1, H_l, W_l)
            if focal is not None:
                depth = depth * (focal.float().reshape(b * k) / self.equal_focal)[:, None, None, None]
            depths.append(depth)
        return depths
