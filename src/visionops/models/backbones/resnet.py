"""ResNet-18/34/50/101 backbone with torchvision's parameter names, and loading of torchvision ImageNet weights.

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

import os
import pickle
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

# _BatchNorm, not nn.BatchNorm2d: norm_eval must also catch SyncBatchNorm after convert_sync_batchnorm.
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["TORCHVISION_URLS", "BasicBlock", "Bottleneck", "ResNet", "build_resnet", "load_pretrained"]

# torchvision's ImageNet checkpoints (plain state dicts, every key matches this module's). The hash in the name is
# the first 8 hex digits of the file's sha256, which torch.hub checks.
TORCHVISION_URLS: dict[str, str] = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",  # IMAGENET1K_V1
    "resnet50_v2": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",  # IMAGENET1K_V2, same architecture
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",  # IMAGENET1K_V1
    "resnet101_v2": "https://download.pytorch.org/models/resnet101-cd907fc2.pth",  # IMAGENET1K_V2
}

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
_ARCH: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
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
        if depth not in _ARCH:
            raise ValueError(f"ResNet depth must be one of {sorted(_ARCH)}, got {depth!r}")
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
        block, blocks_per_stage = _ARCH[depth]

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
    depths = {f"resnet{d}": d for d in _ARCH}
    key = name.strip().lower()
    if key not in depths:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(depths, key=depths.get)}")
    return ResNet(depths[key], **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------------------------

# mmdet/mmdet3d detectors name their backbone "backbone" (Sparse4D: "img_backbone"); DataParallel adds "module.".
_BACKBONE_PREFIXES = ("backbone.", "img_backbone.")
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def load_pretrained(model: ResNet, path: str | os.PathLike[str], *, strict: bool = False) -> dict[str, Any]:
    """Load a torchvision-format ResNet checkpoint (e.g. ``resnet50-0676ba61.pth``) into ``model``.

    The file is read with ``torch.load(map_location="cpu", weights_only=True)``: only tensors and plain containers
    are unpickled, a file holding other Python objects is refused. Accepted contents: a state dict, or a dict
    holding one under ``"state_dict"`` or ``"model"``. A ``module.`` prefix is stripped; if some keys start with
    ``backbone.``/``img_backbone.`` (a whole detector's checkpoint) only those are used, prefix stripped. ``fc.*``
    is skipped when the model has no fc. Tensors are copied in model order; the model's dtype and device stay.

    Args:
        model: the ResNet to fill, in place.
        path: checkpoint file.
        strict: raise ``RuntimeError`` (before loading anything) if a key is missing, unexpected or mis-shaped.

    Returns:
        Report, lists of state dict keys: ``loaded``; ``missing`` (in the model, not in the file: e.g. the extra
        projections of ``all_projections`` or of ``use_pooling=False``, which keep their initialisation;
        ``num_batches_tracked`` is never counted, old torchvision files lack it and it only matters with
        momentum=None); ``unexpected`` (in the file, not in the model); ``shape_mismatch`` (key -> {"checkpoint":
        shape, "model": shape}, not loaded); ``skipped`` (fc and non-backbone keys dropped on purpose).

    Raises:
        FileNotFoundError: no such file; the message gives torchvision's download URLs.
        ValueError: not a loadable checkpoint, not a state dict, ResNet weights of another depth, or no key at all
            matching the model.
    """
    path = Path(path)
    depth = getattr(model, "depth", None)
    if not path.is_file():
        raise FileNotFoundError(_missing_file_message(path, depth))
    state, skipped = _read_state_dict(path)

    if not hasattr(model, "fc"):
        skipped += [k for k in state if k.startswith("fc.")]
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if depth in _ARCH:
        _check_depth(state, depth, path)

    model_state = model.state_dict()
    to_load: dict[str, Tensor] = {}
    unexpected: list[str] = []
    shape_mismatch: dict[str, dict[str, list[int]]] = {}
    for key, value in state.items():
        if key not in model_state:
            unexpected.append(key)
        elif value.shape != model_state[key].shape:
            shape_mismatch[key] = {"checkpoint": list(value.shape), "model": list(model_state[key].shape)}
        else:
            to_load[key] = value
    missing = [
        k for k in model_state
        if k not in to_load and k not in shape_mismatch and not k.endswith(".num_batches_tracked")
    ]
    report = {
        "loaded": [k for k in model_state if k in to_load],
        "missing": missing,
        "unexpected": unexpected,
        "shape_mismatch": shape_mismatch,
        "skipped": skipped,
    }
    if not to_load:
        raise ValueError(
            f"{path}: none of its {len(state)} tensors matches a ResNet parameter name "
            f"(first keys: {list(state)[:5]}); expected torchvision names such as 'conv1.weight', 'layer1.0.bn1.bias'"
        )
    if strict and (missing or unexpected or shape_mismatch):
        raise RuntimeError(
            f"{path} does not match the model exactly (strict=True): {len(missing)} missing {missing[:10]}, "
            f"{len(unexpected)} unexpected {unexpected[:10]}, "
            f"{len(shape_mismatch)} mis-shaped {dict(list(shape_mismatch.items())[:10])} (10 of each at most shown)"
        )
    # Plain dict without _metadata: BatchNorm then fills an absent num_batches_tracked with its own value.
    model.load_state_dict(to_load, strict=False)
    return report


def _missing_file_message(path: Path, depth: int | None) -> str:
    name = f"resnet{depth}"
    urls = {k: v for k, v in TORCHVISION_URLS.items() if k == name or k.startswith(f"{name}_")} or TORCHVISION_URLS
    listing = "\n".join(f"  {k}: {v}" for k, v in urls.items())
    return (
        f"pretrained ResNet weights not found: {path}\n"
        f"torchvision's ImageNet weights (plain state dicts, loadable as they are) can be downloaded from:\n{listing}\n"
        f"e.g. curl -L -o {path} {next(iter(urls.values()))}"
    )


def _read_state_dict(path: Path) -> tuple[dict[str, Tensor], list[str]]:
    """(state dict with prefixes stripped, keys dropped as not backbone) from a checkpoint file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is a page of advice; its one informative line names what was refused.
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = next((line for line in lines if "Unsupported" in line), lines[0] if lines else type(e).__name__)
        if "Unsupported global" in detail:
            raise ValueError(
                f"{path} holds Python objects other than tensors and containers, refused by "
                f"torch.load(weights_only=True) because unpickling them could run arbitrary code ({detail}). "
                "Re-save only the weights: torch.save(model.state_dict(), path)."
            ) from e
        raise ValueError(f"{path} is not a PyTorch checkpoint (torch.load(weights_only=True) failed: {detail})") from e
    except Exception as e:  # torch.load reports a foreign or truncated file as KeyError, EOFError, RuntimeError...
        raise ValueError(f"{path} is not a PyTorch checkpoint (torch.load failed: {type(e).__name__}: {e})") from e

    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors): got {type(obj).__name__}")
    bad = {k: type(v).__name__ for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)}
    if bad:
        raise ValueError(
            f"{path} is not a state dict: entries that are not name -> tensor: {dict(list(bad.items())[:5])}"
            f" (top-level keys: {list(obj)[:10]})"
        )

    state = {k.removeprefix("module."): v for k, v in obj.items()}
    skipped: list[str] = []
    prefix = next((p for p in _BACKBONE_PREFIXES if any(k.startswith(p) for k in state)), None)
    if prefix is not None:
        skipped = [k for k in state if not k.startswith(prefix)]
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    return state, skipped


def _describe(block_name: str, blocks: tuple[int, ...]) -> str:
    depth = next((d for d, (b, n) in _ARCH.items() if b.__name__ == block_name and n == blocks), None)
    if depth is None and block_name == "Bottleneck" and blocks == (3, 8, 36, 3):
        depth = 152  # not buildable here, but worth naming
    kind = f"ResNet-{depth}" if depth is not None else "an unknown ResNet variant"
    return f"{kind} ({block_name}, blocks per stage {list(blocks)})"


def _check_depth(state: Mapping[str, Tensor], depth: int, path: Path) -> None:
    """Raise if the file's blocks (kind and count per stage, from its keys) are not those of ResNet-``depth``."""
    blocks = [0, 0, 0, 0]
    bottleneck = False
    for key in state:
        m = _BLOCK_KEY.match(key)
        if m:
            stage, index = int(m.group(1)) - 1, int(m.group(2))
            blocks[stage] = max(blocks[stage], index + 1)
            bottleneck = bottleneck or key[m.end():].startswith("conv3.")
    if not any(blocks):
        return  # no block keys: nothing to compare, the key matching reports the rest
    block, expected = _ARCH[depth]
    file_kind = "Bottleneck" if bottleneck else "BasicBlock"
    # Stages absent from the file (a truncated backbone) are not held against it; present ones must match.
    if file_kind != block.__name__ or any(n and n != e for n, e in zip(blocks, expected, strict=True)):
        raise ValueError(
            f"{path} looks like {_describe(file_kind, tuple(blocks))} weights but the model is "
            f"{_describe(block.__name__, expected)}: build the model with the checkpoint's depth or use "
            f"resnet{depth} weights (e.g. {TORCHVISION_URLS[f'resnet{depth}']})"
        )
