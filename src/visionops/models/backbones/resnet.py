"""ResNet-18/34/50/101 backbone with torchvision's parameter names (weights: :mod:`.pretrained`).

One network serves both models of the project:

* DetectNet_v2 (TAO GridBox): ResNet-18, ``all_projections=True``, ``use_pooling=False``, ``last_stage_stride=1``,
  ``out_indices=(4,)`` -> one (N, 512, H/16, W/16) map, TAO's layout.
* Sparse4D: ResNet-50/101, ``out_indices=(1, 2, 3, 4)`` -> four maps at strides 4, 8, 16, 32 for the FPN, with
  ``frozen_stages``/``norm_eval`` as in the mmdet configs.

Module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0`` ...),
so a torchvision checkpoint (a plain state dict) loads key for key. Blocks are torchvision's "v1.5": a Bottleneck
strides on its 3x3 conv, not on the first 1x1.

Output strides (input pixels per feature pixel) of layer1..layer4, all four combinations:

    use_pooling  last_stage_stride  stem  layer1..4 strides  output strides  total
    True         2 (torchvision)    /4    1, 2, 2, 2         4, 8, 16, 32    32
    True         1                  /4    1, 2, 2, 1         4, 8, 16, 16    16 (TAO)
    False        2                  /2    2, 2, 2, 2         4, 8, 16, 32    32
    False        1 (DetectNet_v2)   /2    2, 2, 2, 1         4, 8, 16, 16    16 (TAO)

The stem is conv1 (7x7, /2) then, with ``use_pooling``, a 3x3/2 max pool. Without the pool, layer1's first block
strides 2 instead (TAO's ``first_stride``), so every stage keeps its output stride whichever stem is used. Every
strided conv pads so that a size h becomes ceil(h / 2): a feature map is exactly H/stride x W/stride when H and W
are multiples of the total stride, and ceil'ed stage by stage otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

# _BatchNorm, not nn.BatchNorm2d: norm_eval must also catch SyncBatchNorm after convert_sync_batchnorm.
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "build_resnet"]

_STAGE_WIDTHS = (64, 128, 256, 512)  # bottleneck width of each stage; outputs are width * block.expansion


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut (ResNet-18/34). (N, inplanes, H, W) -> (N, planes, ceil(H/s), ceil(W/s))."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, torchvision v1.5), 1x1 expand x4, and a shortcut (ResNet-50/101).

    (N, inplanes, H, W) -> (N, 4 * planes, ceil(H/s), ceil(W/s)).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# depth -> (block, blocks per stage), torchvision's table.
ARCHITECTURES: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """ResNet backbone (or classifier when ``num_classes`` is given) with torchvision's module names.

    Args:
        depth: 18 or 34 (BasicBlock), 50 or 101 (Bottleneck).
        out_indices: stages whose outputs ``forward`` returns, 1..4 = layer1..layer4, strictly increasing. Note
            mmdet counts from 0: its ``(0, 1, 2, 3)`` is ``(1, 2, 3, 4)`` here. Stages after the last requested one
            are built (the state dict stays torchvision's) but not run, so they get no gradient (DDP then needs
            ``find_unused_parameters`` or those stages frozen).
        all_projections: give every block a ``downsample`` (1x1 conv + BN) shortcut, even when the shape does not
            change. TAO does this so that each block's width can be pruned independently of its input; torchvision
            weights have no such projections for those blocks, they keep their initialisation.
        last_stage_stride: 2 (torchvision, total stride 32) or 1 (TAO DetectNet_v2, total stride 16).
        use_pooling: max pool after conv1 (torchvision). Without it layer1 strides 2 instead, see the module table;
            for ResNet-18/34 layer1's first block then needs (and gets) a ``downsample``, absent from torchvision's
            weights.
        frozen_stages: -1 trains everything; 0 freezes the stem (conv1, bn1); k >= 1 the stem and layer1..layerk:
            requires_grad False and kept in eval mode (BN statistics frozen) even after ``.train()``.
        norm_eval: keep every BatchNorm in eval mode (running statistics used and not updated) during training,
            as mmdet does for small detection batches. Their affine weights still train unless frozen.
        num_classes: adds torchvision's ``avgpool`` and ``fc`` (512 * expansion -> num_classes); ``forward`` then
            returns logits. None (default): no avgpool/fc, ``forward`` returns feature maps.
        zero_init_residual: zero the last BN weight of every block so each residual branch starts as identity.

    Attributes:
        out_channels: channels of each returned map, e.g. ``[256, 512, 1024, 2048]`` for ResNet-50 with
            ``out_indices=(1, 2, 3, 4)``.
        strides: output stride of each returned map, input pixels per feature pixel, e.g. ``[4, 8, 16, 32]``.
    """

    def __init__(
        self,
        depth: Literal[18, 34, 50, 101],
        *,
        out_indices: Iterable[int] = (4,),
        all_projections: bool = False,
        last_stage_stride: int = 2,
        use_pooling: bool = True,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        num_classes: int | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if depth not in ARCHITECTURES:
            raise ValueError(f"ResNet depth must be one of {sorted(ARCHITECTURES)}, got {depth!r}")
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i not in (1, 2, 3, 4) for i in out_indices):
            raise ValueError(
                f"out_indices must be a non-empty subset of 1..4 (layer1..layer4), got {out_indices}; "
                "mmdet's 0-based (0, 1, 2, 3) is (1, 2, 3, 4) here"
            )
        if list(out_indices) != sorted(set(out_indices)):
            raise ValueError(f"out_indices must be strictly increasing, got {out_indices}")
        if last_stage_stride not in (1, 2):
            raise ValueError(f"last_stage_stride must be 1 or 2, got {last_stage_stride!r}")
        if frozen_stages not in (-1, 0, 1, 2, 3, 4):
            raise ValueError(f"frozen_stages must be in -1..4, got {frozen_stages!r}")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 or None, got {num_classes!r}")

        self.depth = depth
        self.out_indices = out_indices
        self.all_projections = all_projections
        self.use_pooling = use_pooling
        self.last_stage_stride = last_stage_stride
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.num_classes = num_classes
        block, blocks_per_stage = ARCHITECTURES[depth]

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # Identity rather than no attribute: keeps forward branch-free (tracing, ONNX); it has no state dict keys.
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if use_pooling else nn.Identity()

        # Without the pool, its /2 moves to layer1 (TAO's first_stride = 2) so later strides are unchanged.
        layer_strides = (1 if use_pooling else 2, 2, 2, last_stage_stride)
        inplanes = 64
        total = 4 if use_pooling else 2
        all_out_channels, all_strides = [], []
        stages = zip(_STAGE_WIDTHS, blocks_per_stage, layer_strides, strict=True)
        for i, (width, n, stride) in enumerate(stages, start=1):
            self.add_module(f"layer{i}", _make_layer(block, inplanes, width, n, stride, all_projections))
            inplanes = width * block.expansion
            total *= stride
            all_out_channels.append(inplanes)
            all_strides.append(total)
        self.out_channels = [all_out_channels[i - 1] for i in out_indices]
        self.strides = [all_strides[i - 1] for i in out_indices]

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512 * block.expansion, num_classes)

        self._init_weights(zero_init_residual)
        self._freeze_stages()

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # fc keeps nn.Linear's default init, as torchvision.
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.conv1, self.bn1] + [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet:
        """``nn.Module.train``, then frozen stages (and every BN with ``norm_eval``) back to eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps of the ``out_indices`` stages.

        Args:
            x: (N, 3, H, W) normalised image batch.

        Returns:
            One (N, out_channels[j], ceil(H / strides[j]), ceil(W / strides[j])) tensor per requested stage.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(1, self.out_indices[-1] + 1):
            x = getattr(self, f"layer{i}")(x)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def forward(self, x: Tensor) -> list[Tensor] | Tensor:
        """(N, 3, H, W) -> list of feature maps (see ``forward_features``), or (N, num_classes) logits with fc."""
        if self.num_classes is None:
            return self.forward_features(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _make_layer(
    block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int, stride: int,
    all_projections: bool,
) -> nn.Sequential:
    """One stage: ``blocks`` blocks, the first strides ``stride`` and maps inplanes -> planes * expansion."""
    layers = []
    for i in range(blocks):
        block_stride = stride if i == 0 else 1
        block_in = inplanes if i == 0 else planes * block.expansion
        downsample = None
        if all_projections or block_stride != 1 or block_in != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(block_in, planes * block.expansion, 1, stride=block_stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers.append(block(block_in, planes, block_stride, downsample))
    return nn.Sequential(*layers)


def build_resnet(name: str, **kwargs: Any) -> ResNet:
    """``ResNet`` by name: "resnet18", "resnet34", "resnet50" or "resnet101"; kwargs go to ``ResNet``."""
    depths = {f"resnet{d}": d for d in ARCHITECTURES}
    key = name.strip().lower()
    if key not in depths:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(depths, key=depths.get)}")
    return ResNet(depths[key], **kwargs)
