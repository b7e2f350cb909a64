"""DetectNet_v2 (GridBox): a stride-16 ResNet and two 1x1 heads, as TAO builds it.

For an input (N, 3, H, W) (RGB / 255, no mean subtraction) and C classes:

* ``output_cov``: (N, C, H/16, W/16) coverage, the probability that a cell lies on an object of class c
  (the module returns logits for training; :meth:`DetectNetV2.predict` and the export wrapper apply the
  sigmoid, as TAO's ``output_cov/Sigmoid`` does);
* ``output_bbox``: (N, 4C, H/16, W/16) box regression, channel ``4c + k`` with k in (L, T, R, B): distances
  from the cell's reference point to the box edges divided by 35 (see ``box_coding``).

The backbone is TAO's ResNet template: no max-pool, strides 2, 2, 2, 1 in the stages (total stride 16)
and, with ``all_projections``, a 1x1 projection on every block so pruning can shrink each block
independently. Heads use Glorot-uniform kernels and zero biases (TAO's initialisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from visionops.models.backbones.resnet import ResNet

STRIDE = 16


@dataclass(frozen=True)
class DetectNetPreset:
    """A named model configuration."""

    arch: str
    input_size: tuple[int, int]  # (width, height), multiples of 16
    class_names: tuple[str, ...]
    all_projections: bool = True


PRESETS: dict[str, DetectNetPreset] = {
    # The DashCamNet card: ResNet-18, 960x544 (60x34 grid), 4 classes in the released order.
    "dashcamnet": DetectNetPreset("resnet18", (960, 544), ("car", "bicycle", "person", "road_sign")),
    # Our default: the six 2025 warehouse classes at half the converted resolution (CPU-friendly).
    "warehouse": DetectNetPreset("resnet18", (480, 272), ("person", "forklift", "novacarter", "transporter",
                                                          "fouriergr1t2", "agilitydigit")),
}


class DetectNetV2(nn.Module):
    """GridBox detector.

    Args:
        num_classes: C.
        arch: ``resnet18|34|50|101``.
        all_projections: TAO's projection shortcut on every block.
    """

    def __init__(self, num_classes: int, arch: str = "resnet18", all_projections: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        depth = int(arch.lower().removeprefix("resnet"))
        self.num_classes, self.arch, self.all_projections = num_classes, arch, all_projections
        self.backbone = ResNet(depth, out_indices=(4,), all_projections=all_projections, last_stage_stride=1,
                               use_pooling=False)
        channels = self.backbone.out_channels[-1]
        self.output_cov = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.output_bbox = nn.Conv2d(channels, 4 * num_classes, kernel_size=1)
        for head in (self.output_cov, self.output_bbox):
            nn.init.xavier_uniform_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) in [0, 1] -> coverage logits (N, C, H/16, W/16), bbox (N, 4C, H/16, W/16)."""
        features = self.backbone(images)[-1]
        return self.output_cov(features), self.output_bbox(features)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coverage probabilities and bbox regression, as the exported model outputs them."""
        cov_logits, bbox = self(images)
        return torch.sigmoid(cov_logits), bbox

    @property
    def head_names(self) -> tuple[str, str]:
        """Module names of the output heads (never pruned)."""
        return "output_cov", "output_bbox"


class DetectNetExport(nn.Module):
    """Export wrapper: outputs (sigmoid coverage, bbox) in TAO/DeepStream order and meaning."""

    def __init__(self, model: DetectNetV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cov_logits, bbox = self.model(images)
        return torch.sigmoid(cov_logits), bbox


def build_detectnet(class_names: Sequence[str], arch: str = "resnet18", all_projections: bool = True) -> DetectNetV2:
    return DetectNetV2(len(class_names), arch=arch, all_projections=all_projections)


def check_input_size(width: int, height: int) -> tuple[int, int]:
    """The grid size (W/16, H/16); ValueError when the input is not a multiple of the stride."""
    if width % STRIDE or height % STRIDE or width <= 0 or height <= 0:
        raise ValueError(f"DetectNet_v2 input must be positive multiples of {STRIDE}, got {width}x{height} "
                         f"(e.g. {round(width / STRIDE) * STRIDE}x{round(height / STRIDE) * STRIDE})")
    return width // STRIDE, height // STRIDE
