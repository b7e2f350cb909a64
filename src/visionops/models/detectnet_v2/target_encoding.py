"""DetectNet_v2 (GridBox) training targets: TAO's bbox rasterizer, reimplemented in numpy.

For every image and class the rasterizer draws each GT box as a soft *coverage ellipse* on the stride-16 output
grid and writes three targets per class (C classes, grid H x W = image / stride):

- ``cov`` (C, H, W): fraction in [0, 1] of a cell's 4x4 sub-samples inside the coverage ellipse (the sigmoid
  head's target);
- ``cov_norm`` (C, H, W): ``inv_bbox_area * cov``, a per-cell loss weight for the bbox L1 term (never learned),
  so every object weighs about the same in the bbox loss whatever its size;
- ``bbox`` (4C, H, W): the box coded as LTRB distances (:mod:`.box_coding`) from the cell's reference point,
  written where ``cov > 0`` and *not* multiplied by the coverage; zero elsewhere.

Geometry per box, in output-cell units (pixels / stride), following TAO ``bbox_rasterizer.py`` and the
``rasterize_bbox`` kernel:

1. centre ``cx = x1 + cov_center_x * (x2 - x1)``; half-size ``sx`` = distance from the centre to the nearer
   edge (``w / 2`` for a centred ellipse); the same for y.
2. coverage semi-axes ``csx = cov_radius_x * sx`` (``csy`` alike), each clamped to >= 0.1, then scaled up to
   ``bbox_min_radius`` keeping the aspect ratio: first if ``csx`` is too small, then if ``csy`` still is.
3. deadzone semi-axes ``ds = (1 - deadzone_radius) * cs + deadzone_radius * s``, at least ``cs``.
4. ``inv_bbox_area = 1 / max(4 * csx * csy, 1)`` (inverse area of the coverage ellipse's bounding box, <= 1).

A cell ``(i, j)`` spans ``[i, i+1) x [j, j+1)``; its coverage ``c`` and deadzone fraction ``a`` count the
sub-samples ``(i + (k + 0.5)/n, j + (l + 0.5)/n)``, ``n = 4``, strictly inside the respective ellipse. Boxes of
one class are drawn in ascending ``ymax`` (farther objects first in a road scene) with a per-cell running
maximum ``max_cov``: if ``a >= max_cov and a > 0`` the cell is cleared (``max_cov = 0``, all targets 0), then if
``c >= max_cov and c > 0`` the box overwrites the cell. A nearer object's deadzone therefore erases farther
objects' coverage around it, so each cell regresses one box. ``max_cov`` always equals the written ``cov``, so
``cov`` itself holds it.

Known, intended asymmetry (kept for DeepStream compatibility): coverage integrates over the whole cell, but the
bbox target is evaluated at the cell's *integer* coordinate, i.e. reference point ``(i*s + 0.5, j*s + 0.5)`` px.

Beyond TAO (whose data pipeline guarantees clean boxes): boxes are clipped to the image first; boxes that are
empty after clipping (degenerate or fully outside) are skipped; non-finite coordinates and labels outside
``[0, num_classes)`` raise ``ValueError``.

Cost: each box only touches the cells of its deadzone's bounding rectangle; the sub-sample tests of all boxes run
as one batch of numpy calls and only the order-dependent update loops over boxes (no per-cell Python loop).
On one CPU core, 20 boxes of 10-300 px on a 60x34 grid take ~1 ms; 20 boxes of 300-680 px ~7 ms (cost grows
with the covered area: 16 samples x 2 ellipses per touched cell).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from visionops.models.detectnet_v2.box_coding import DEFAULT_OFFSET, DEFAULT_SCALE, DEFAULT_STRIDE, ltrb_at

_MIN_SEMI_AXIS = 0.1
"""TAO's safety clamp on the coverage semi-axes, output cells (keeps 1/cs finite for zero-size boxes)."""


@dataclass(frozen=True)
class ClassTargetConfig:
    """Per-class rasterizer parameters (TAO ``bbox_rasterizer_config.target_class_config``).

    Attributes:
        cov_center_x, cov_center_y: ellipse centre as a fraction of the box width / height (0.5 = middle).
        cov_radius_x, cov_radius_y: ellipse semi-axes as a fraction of the box *half*-size (1.0 touches the
            nearer box edge). TAO specs use 0.4 for cars and ~1.0 for thin classes (people, bicycles).
        bbox_min_radius: minimum coverage semi-axis in output cells; smaller ellipses are scaled up keeping
            their aspect ratio, so tiny objects still get at least a cell or two of coverage.
    """

    cov_center_x: float = 0.5
    cov_center_y: float = 0.5
    cov_radius_x: float = 0.4
    cov_radius_y: float = 0.4
    bbox_min_radius: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cov_center_x", "cov_center_y"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (a fraction of the box size), got {value}")
        for name in ("cov_radius_x", "cov_radius_y"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not (math.isfinite(self.bbox_min_radius) and self.bbox_min_radius >= 0.0):
            raise ValueError(f"bbox_min_radius must be a finite number >= 0, got {self.bbox_min_radius}")


class GridboxTargetEncoder:
    """Rasterize GT boxes of one image into DetectNet_v2 ``cov`` / ``cov_norm`` / ``bbox`` targets.

    Args:
        num_classes: C; the class index is the output channel (cov channel c, bbox channels 4c..4c+3).
        image_size: network input ``(W, H)`` in pixels; both must be multiples of ``stride``.
        stride: pixels per output cell (16 for the TAO ResNet backbones).
        class_configs: C :class:`ClassTargetConfig`, in class order; ``None`` = defaults for every class.
        deadzone_radius: TAO ``deadzone_radius``: where the deadzone ellipse sits between the coverage ellipse
            (0) and the ellipse touching the box edges (1).
        scale, offset: TAO ``objective_set.bbox`` (35.0, 0.5); see :mod:`.box_coding`.
        supersample: sub-samples per cell side (TAO hard-codes 4, so coverages are multiples of 1/16).

    Example::

        enc = GridboxTargetEncoder(4, image_size=(960, 544))
        t = enc.encode(boxes_px, labels)          # t["cov"]: (4, 34, 60), t["bbox"]: (16, 34, 60)
        batch = enc.encode_batch([b0, b1], [l0, l1])  # t["cov"]: (2, 4, 34, 60)
    """

    def __init__(self, num_classes: int, image_size: tuple[int, int], stride: int = DEFAULT_STRIDE,
                 class_configs: Sequence[ClassTargetConfig] | None = None, deadzone_radius: float = 0.67,
                 scale: float = DEFAULT_SCALE, offset: float = DEFAULT_OFFSET, supersample: int = 4) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        width, height = (int(v) for v in image_size)
        if width <= 0 or height <= 0 or width % stride or height % stride:
            # A non-multiple would make a cell's pixel size differ from the stride (TAO then rescales by
            # out/in per axis), which the exact stride-based coding here and in DeepStream does not model.
            raise ValueError(f"image_size (W, H) = {tuple(image_size)} must be positive multiples of stride {stride}")
        if class_configs is None:
            class_configs = [ClassTargetConfig()] * int(num_classes)
        if len(class_configs) != int(num_classes):
            raise ValueError(f"got {len(class_configs)} class_configs for num_classes={num_classes}")
        if not 0.0 <= deadzone_radius <= 1.0:
            raise ValueError(f"deadzone_radius must be in [0, 1], got {deadzone_radius}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale}")
        if int(supersample) < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")

        self.num_classes = int(num_classes)
        self.image_size = (width, height)
        self.stride = int(stride)
        self.grid_w, self.grid_h = width // self.stride, height // self.stride
        self.class_configs = tuple(class_configs)
        self.deadzone_radius = float(deadzone_radius)
        self.scale = float(scale)
        self.offset = float(offset)
        self.supersample = int(supersample)

        # Per-class parameter tables, indexed by label, so per-box parameters are one fancy-index away.
        params = np.array([[c.cov_center_x, c.cov_center_y, c.cov_radius_x, c.cov_radius_y, c.bbox_min_radius]
                           for c in self.class_configs], dtype=np.float64)
        self._cov_center, self._cov_radius, self._min_radius = params[:, 0:2], params[:, 2:4], params[:, 4]
        # Sub-sample offsets within a cell, (k + 0.5) / n.
        self._sample_offsets = (np.arange(self.supersample, dtype=np.float64) + 0.5) / self.supersample
        self._sample_weight = np.float32(1.0 / self.supersample**2)

    @property
    def output_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Per-image target shapes: ``cov`` / ``cov_norm`` (C, H, W), ``bbox`` (4C, H, W)."""
        c, h, w = self.num_classes, self.grid_h, self.grid_w
        return {"cov": (c, h, w), "cov_norm": (c, h, w), "bbox": (4 * c, h, w)}

    # ----------------------------------------------------------------------------------------------------------
    # Public API

    def encode(self, boxes: Any, labels: Any) -> dict[str, Tensor]:
        """Targets of one image.

        Args:
            boxes: (M, 4) ``x1, y1, x2, y2`` float pixels in network-input coordinates (after augmentation and
                resizing); numpy array, tensor or nested list. M may be 0.
            labels: (M,) integer class indices in ``[0, num_classes)``.

        Returns:
            ``{"cov": (C, H, W), "cov_norm": (C, H, W), "bbox": (4C, H, W)}`` float32 CPU tensors.

        Raises:
            ValueError: on non-finite coordinates, a label outside ``[0, num_classes)``, or bad shapes.
        """
        cov, cov_norm, bbox = self._allocate(())
        self._encode_into(cov, cov_norm, bbox, boxes, labels)
        return {"cov": torch.from_numpy(cov), "cov_norm": torch.from_numpy(cov_norm), "bbox": torch.from_numpy(bbox)}

    def encode_batch(self, list_of_boxes: Sequence[Any], list_of_labels: Sequence[Any]) -> dict[str, Tensor]:
        """Targets of N images, stacked: ``cov`` / ``cov_norm`` (N, C, H, W), ``bbox`` (N, 4C, H, W) float32.

        Meant for a DataLoader ``collate_fn`` (images have different box counts, so boxes cannot be stacked
        before rasterizing). Errors name the offending image index.
        """
        if len(list_of_boxes) != len(list_of_labels):
            raise ValueError(f"got {len(list_of_boxes)} box arrays but {len(list_of_labels)} label arrays")
        cov, cov_norm, bbox = self._allocate((len(list_of_boxes),))
        for n, (boxes, labels) in enumerate(zip(list_of_boxes, list_of_labels, strict=True)):
            try:
                self._encode_into(cov[n], cov_norm[n], bbox[n], boxes, labels)
            except ValueError as exc:
                raise ValueError(f"image {n} of the batch: {exc}") from exc
        return {"cov": torch.from_numpy(cov), "cov_norm": torch.from_numpy(cov_norm), "bbox": torch.from_numpy(bbox)}

    # ----------------------------------------------------------------------------------------------------------
    # Internals

    def _allocate(self, lead: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shapes = self.output_shapes
        return (np.zeros(lead + shapes["cov"], np.float32), np.zeros(lead + shapes["cov_norm"], np.float32),
                np.zeros(lead + shapes["bbox"], np.float32))

    def _validate(self, boxes: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        """(M, 4) float64 boxes clipped to the image with empty ones dropped, and their (M,) int64 labels."""
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (M, 4), got {boxes.shape}")
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != boxes.shape[0]:
            raise ValueError(f"got {boxes.shape[0]} boxes but {labels.shape[0]} labels")
        integral = labels.dtype.kind in "iu" or (
            labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels) & (labels == np.round(labels)))))
        if not integral:
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}: {labels.tolist()}")
        labels = labels.astype(np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= self.num_classes))
        if bad.size:
            raise ValueError(f"label {labels[bad[0]]} of box {bad[0]} is out of range for "
                             f"num_classes={self.num_classes} (valid: 0..{self.num_classes - 1})")
        nonfinite = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
        if nonfinite.size:
            raise ValueError(f"box {nonfinite[0]} has non-finite (NaN/inf) coordinates {boxes[nonfinite[0]].tolist()}")
        width, height = self.image_size
        boxes = np.clip(boxes, 0.0, [width, height, width, height])
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # degenerate or fully outside -> empty
        return boxes[keep], labels[keep]

    def _ellipses(self, boxes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-box ellipse geometry in output cells: centre, coverage and deadzone semi-axes (each (M, 2)),
        and ``inv_bbox_area`` (M,)."""
        lo, hi = boxes[:, 0:2] / self.stride, boxes[:, 2:4] / self.stride  # (M, 2) x/y, output cells
        frac = self._cov_center[labels]
        centre = lo + frac * (hi - lo)
        # Distance to the nearer edge, so the ellipse never spills out of the box unless forced by min radius.
        half = np.where(frac < 0.5, centre - lo, hi - centre)
        cov_axes = np.maximum(self._cov_radius[labels] * half, _MIN_SEMI_AXIS)
        min_r = self._min_radius[labels]
        # Scale up to bbox_min_radius keeping the aspect: x first, then y (TAO's order; after the x step the
        # y axis may still be short, and the y step then also grows x, so both end >= min_r).
        csx, csy = cov_axes[:, 0], cov_axes[:, 1]
        csy = np.where(csx < min_r, min_r * csy / csx, csy)
        csx = np.maximum(csx, min_r)
        csx = np.where(csy < min_r, min_r * csx / csy, csx)
        csy = np.maximum(csy, min_r)
        cov_axes = np.stack([csx, csy], axis=1)
        dead_axes = (1.0 - self.deadzone_radius) * cov_axes + self.deadzone_radius * half
        dead_axes = np.maximum(dead_axes, cov_axes)
        inv_area = 1.0 / np.maximum(4.0 * csx * csy, 1.0)
        return centre, cov_axes, dead_axes, inv_area

    def _cells(self, boxes: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Every (box, cell) pair the boxes can touch, flattened box-major, with the cell's targets for that box.

        A box touches the cells of its deadzone's bounding rectangle (the deadzone contains the coverage
        ellipse; samples lie strictly inside (i, i+1), so cells floor(c - d) .. floor(c + d) suffice). Doing
        all boxes in one batch of numpy calls keeps the per-box Python work to the order-dependent update.

        Returns (T = total cells over all boxes):
            window: (M, 4) int ``i0, i1, j0, j1`` (half-open, clipped to the grid); start: (M + 1,) offsets
            into the flat arrays; cov / dead: (T,) float32 coverage ``c`` and deadzone fraction ``a``;
            norm: (T,) float32 ``inv_bbox_area * c``; ltrb: (4, T) float64 coded box at the cell.
        """
        centre, cov_axes, dead_axes, inv_area = self._ellipses(boxes, labels)
        grid = np.array([self.grid_w, self.grid_h])
        lo = np.clip(np.floor(centre - dead_axes).astype(np.int64), 0, grid)  # (M, 2) x/y
        hi = np.clip(np.floor(centre + dead_axes).astype(np.int64) + 1, 0, grid)
        extent = np.maximum(hi - lo, 0)  # (M, 2) cells along x / y
        sizes = extent[:, 0] * extent[:, 1]
        start = np.concatenate([[0], np.cumsum(sizes)])
        owner = np.repeat(np.arange(len(boxes)), sizes)  # (T,) box of each flat cell
        local = np.arange(start[-1]) - start[owner]
        col, row = local % extent[owner, 0], local // extent[owner, 0]
        cell = np.stack([lo[owner, 0] + col, lo[owner, 1] + row], axis=1)  # (T, 2) integer i, j

        # Sub-sample coordinates (T, 2, n) and their squared normalised offsets from the ellipse centres.
        samples = cell[:, :, None] + self._sample_offsets
        delta = samples - centre[owner][:, :, None]
        fractions = []
        for axes in (cov_axes, dead_axes):
            u = (delta / axes[owner][:, :, None]) ** 2  # (T, 2, n)
            inside = (u[:, 1, :, None] + u[:, 0, None, :]) < 1.0  # (T, n_y, n_x): strictly inside, as TAO
            fractions.append(inside.sum(axis=(1, 2), dtype=np.int32).astype(np.float32) * self._sample_weight)
        cov, dead = fractions

        # bbox at the integer cell coordinate (reference point i*s + offset, pixels), not times coverage.
        ref = cell * self.stride + self.offset
        x1, y1, x2, y2 = boxes[owner].T
        ltrb = np.stack(ltrb_at(x1, y1, x2, y2, ref[:, 0], ref[:, 1], self.scale))
        norm = (inv_area[owner] * cov).astype(np.float32)
        window = np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], axis=1)
        return {"window": window, "start": start, "cov": cov, "dead": dead, "norm": norm, "ltrb": ltrb}

    def _encode_into(self, cov: np.ndarray, cov_norm: np.ndarray, bbox: np.ndarray, boxes: Any, labels: Any) -> None:
        """Rasterize one image into preallocated zeroed arrays (C, H, W), (C, H, W), (4C, H, W)."""
        boxes, labels = self._validate(boxes, labels)
        if boxes.shape[0] == 0:
            return
        # Ascending ymax, stable for ties (input order). Classes never interact (separate channels), so one
        # global order equals TAO's per-(image, class) order.
        order = np.argsort(boxes[:, 3], kind="stable")
        boxes, labels = boxes[order], labels[order]
        cells = self._cells(boxes, labels)
        start = cells["start"]
        for m, (i0, i1, j0, j1) in enumerate(cells["window"].tolist()):
            if i0 >= i1 or j0 >= j1:
                continue
            shape = (j1 - j0, i1 - i0)
            flat = slice(start[m], start[m + 1])
            c = cells["cov"][flat].reshape(shape)
            a = cells["dead"][flat].reshape(shape)
            cls = labels[m]
            cov_r = cov[cls, j0:j1, i0:i1]  # views: writes land in the outputs; cov_r is TAO's max_cov
            norm_r = cov_norm[cls, j0:j1, i0:i1]
            bbox_r = bbox[4 * cls:4 * cls + 4, j0:j1, i0:i1]
            # This box's deadzone clears cells it dominates (only cells holding something can change).
            clear = (a >= cov_r) & (cov_r > 0)
            if clear.any():
                np.copyto(cov_r, 0.0, where=clear)
                np.copyto(norm_r, 0.0, where=clear)
                np.copyto(bbox_r, 0.0, where=clear)
            write = (c >= cov_r) & (c > 0)
            np.copyto(cov_r, c, where=write)
            np.copyto(norm_r, cells["norm"][flat].reshape(shape), where=write)
            np.copyto(bbox_r, cells["ltrb"][:, flat].reshape((4, *shape)), where=write, casting="same_kind")
