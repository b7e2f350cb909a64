"""DetectNet_v2 (GridBox) box coding: LTRB distances from each grid cell's reference point, as TAO/DeepStream.

Every output cell ``(i, j)`` (column i, row j) of a stride-``s`` grid has a reference point at
``(gx, gy) = (i*s + offset, j*s + offset)`` pixels: the centre of the cell's *top-left pixel*, not the cell
centre. A box ``x1, y1, x2, y2`` (network-input pixels) is coded per cell as the four distances from that point
to the box edges, divided by ``scale``::

    L = (gx - x1) / scale    T = (gy - y1) / scale    R = (x2 - gx) / scale    B = (y2 - gy) / scale

(negative where the point is outside the box). Decoding inverts it and clips to the image, exactly like TAO's
``BboxObjective.predictions_to_absolute`` and DeepStream's ``NvDsInferParseCustomResnet`` (bbox norm 35,
offset 0.5), so a model trained on these targets runs unchanged under DeepStream.

Channel layout of the bbox head is class-major: channel ``4*c + k`` with ``k`` in (L, T, R, B).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

DEFAULT_STRIDE = 16
DEFAULT_SCALE = 35.0
"""TAO ``objective_set.bbox.scale`` (DeepStream's ``bboxNorm``): pixels per unit of coded distance."""
DEFAULT_OFFSET = 0.5
"""TAO ``objective_set.bbox.offset``: reference point = pixel centre of the cell's top-left pixel."""


def ltrb_at(x1: Any, y1: Any, x2: Any, y2: Any, gx: Any, gy: Any, scale: float) -> tuple[Any, Any, Any, Any]:
    """The coded distances ``(L, T, R, B)`` of box edges from reference points ``(gx, gy)``.

    Pure arithmetic, so it works elementwise and with broadcasting on numpy arrays and torch tensors alike;
    the target rasterizer (numpy) and :func:`encode_ltrb` (torch) share it so the two cannot drift apart.
    All inputs in pixels; outputs in units of ``scale`` pixels.
    """
    return (gx - x1) / scale, (gy - y1) / scale, (x2 - gx) / scale, (y2 - gy) / scale


def reference_points(grid_h: int, grid_w: int, stride: int = DEFAULT_STRIDE, offset: float = DEFAULT_OFFSET, *,
                     device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Cell reference points in pixels: ``gx`` (1, W) = ``i*stride + offset``, ``gy`` (H, 1) = ``j*stride + offset``."""
    gx = torch.arange(grid_w, device=device, dtype=dtype) * stride + offset
    gy = torch.arange(grid_h, device=device, dtype=dtype) * stride + offset
    return gx.view(1, grid_w), gy.view(grid_h, 1)


def encode_ltrb(boxes_px: Tensor, grid_h: int, grid_w: int, stride: int = DEFAULT_STRIDE,
                scale: float = DEFAULT_SCALE, offset: float = DEFAULT_OFFSET) -> Tensor:
    """Code boxes as LTRB distances at every cell of the grid (no coverage masking).

    Args:
        boxes_px: (M, 4) ``x1, y1, x2, y2`` in network-input pixels.
        grid_h, grid_w: output grid size (input size / stride).
        stride: pixels per output cell.
        scale, offset: TAO ``objective_set.bbox`` values.

    Returns:
        (M, 4, grid_h, grid_w) coded ``L, T, R, B`` (units of ``scale`` px), in the dtype of ``boxes_px``
        (float32 if it is an integer tensor). The rasterizer writes these values only at the cells a box
        covers; this full-grid form is for tests and analysis.
    """
    boxes = torch.as_tensor(boxes_px)
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes_px must have shape (M, 4), got {tuple(boxes.shape)}")
    gx, gy = reference_points(grid_h, grid_w, stride, offset, device=boxes.device, dtype=boxes.dtype)
    x1, y1, x2, y2 = (boxes[:, k].view(-1, 1, 1) for k in range(4))  # (M, 1, 1) each
    left, top, right, bottom = ltrb_at(x1, y1, x2, y2, gx, gy, scale)  # (M, 1, W), (M, H, 1), ...
    shape = (boxes.shape[0], grid_h, grid_w)
    return torch.stack([left.expand(shape), top.expand(shape), right.expand(shape), bottom.expand(shape)], dim=1)


def decode_ltrb(bbox: Tensor, stride: int = DEFAULT_STRIDE, scale: float = DEFAULT_SCALE,
                offset: float = DEFAULT_OFFSET, image_size: tuple[float, float] | None = None) -> Tensor:
    """Absolute boxes from the bbox head output, as TAO ``predictions_to_absolute`` / DeepStream.

    Args:
        bbox: (N, 4C, H, W) bbox head output (or targets), channel ``4*c + k``, k in (L, T, R, B).
        stride: pixels per output cell.
        scale, offset: TAO ``objective_set.bbox`` values.
        image_size: network input ``(W, H)`` in pixels; defaults to ``(W*stride, H*stride)``.

    Returns:
        (N, C, 4, H, W) ``x1, y1, x2, y2`` in network-input pixels, clipped like TAO: x1 to [0, W_img],
        y1 to [0, H_img], x2 to [x1, W_img], y2 to [y1, H_img] (so boxes are never inverted).
    """
    if bbox.ndim != 4 or bbox.shape[1] % 4:
        raise ValueError(f"bbox must have shape (N, 4C, H, W), got {tuple(bbox.shape)}")
    n, c4, h, w = bbox.shape
    img_w, img_h = (w * stride, h * stride) if image_size is None else image_size
    coded = bbox.reshape(n, c4 // 4, 4, h, w) * scale
    gx, gy = reference_points(h, w, stride, offset, device=bbox.device, dtype=bbox.dtype)
    x1 = (gx - coded[:, :, 0]).clamp(0.0, img_w)
    y1 = (gy - coded[:, :, 1]).clamp(0.0, img_h)
    # TF clip_by_value(v, lo, hi) = min(max(v, lo), hi); lo = x1 <= img_w, so the order of the two is immaterial.
    x2 = torch.maximum((gx + coded[:, :, 2]).clamp(max=img_w), x1)
    y2 = torch.maximum((gy + coded[:, :, 3]).clamp(max=img_h), y1)
    return torch.stack([x1, y1, x2, y2], dim=2)
