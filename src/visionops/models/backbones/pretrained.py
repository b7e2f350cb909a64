"""Loading torchvision ImageNet ResNet weights into :class:`~visionops.models.backbones.resnet.ResNet`.

Only with ``torch.load(weights_only=True)``; errors name the file, say which depth a mismatched file looks like,
and where to get the weights.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from visionops.models.backbones.resnet import ARCHITECTURES, ResNet

__all__ = ["TORCHVISION_URLS", "load_pretrained"]

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
    if depth in ARCHITECTURES:
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
    depth = next((d for d, (b, n) in ARCHITECTURES.items() if b.__name__ == block_name and n == blocks), None)
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
    block, expected = ARCHITECTURES[depth]
    file_kind = "Bottleneck" if bottleneck else "BasicBlock"
    # Stages absent from the file (a truncated backbone) are not held against it; present ones must match.
    if file_kind != block.__name__ or any(n and n != e for n, e in zip(blocks, expected, strict=True)):
        raise ValueError(
            f"{path} looks like {_describe(file_kind, tuple(blocks))} weights but the model is "
            f"{_describe(block.__name__, expected)}: build the model with the checkpoint's depth or use "
            f"resnet{depth} weights (e.g. {TORCHVISION_URLS[f'resnet{depth}']})"
        )
