"""Why a 2D detector misses: every false positive and false negative of the KPI counts gets one cause.

The KPIs (:mod:`visionops.evaluation.kpi`) say *how many* FP and FN there are at the score threshold; this module
says *which kind*, in the spirit of TIDE (Bolya et al., 2020) but on exactly the KPI's matching, so the causes add
up to the KPI's FP and FN per class:

False positives (a kept detection that is not a TP), first cause that applies:

- ``duplicate``: its best same-class GT overlaps enough (IoU >= the class threshold) but a higher-scored
  detection already took that GT -- clustering left two boxes on one object;
- ``localisation``: its best same-class GT overlaps, but not enough (``loc_iou`` <= IoU < threshold);
- ``confusion``: it overlaps a GT of *another* class enough (IoU >= that class's threshold) -- right place, wrong
  class;
- ``background``: none of these -- it fires on nothing.

False negatives (a GT no detection matched), first cause that applies:

- ``localisation``: some kept same-class detection overlaps it with IoU >= ``loc_iou`` (too loosely, or it went to
  another GT);
- ``confusion``: a kept detection of another class overlaps it enough -- found, but called something else;
- ``missed``: nothing kept comes near it.

Also recall by GT height (network-input pixels), so that "misses small objects" is a number, not a guess.
Boxes are ``x1, y1, x2, y2`` pixels; size filter, pixel convention and matching are the KPI's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionops.evaluation.kpi import (
    PerClass,
    PixelConvention,
    _as_rows,
    _class_ids,
    _per_class_values,
    _size_ok,
    box_iou,
    match_detections,
)

FP_CAUSES: tuple[str, ...] = ("duplicate", "localisation", "confusion", "background")
FN_CAUSES: tuple[str, ...] = ("localisation", "confusion", "missed")
DEFAULT_HEIGHT_BINS: tuple[float, ...] = (0.0, 40.0, 80.0, float("inf"))


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"  # "80-inf" for the last, open bin (also a valid MLflow metric name)


@dataclass
class ClassErrors:
    """Causes of one class's FP and FN at the score threshold (counts), and its recall per GT height bin."""

    false_positives: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FP_CAUSES, 0))
    false_negatives: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FN_CAUSES, 0))
    gt_per_bin: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    tp_per_bin: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass
class ErrorBreakdown:
    """Error causes per class (in class order) and pooled; ``height_bins`` are the recall bin edges (px)."""

    per_class: dict[str, ClassErrors]
    height_bins: tuple[float, ...]
    score_threshold: float

    def totals(self) -> ClassErrors:
        """The counts of every class added up."""
        total = ClassErrors(gt_per_bin=np.zeros(len(self.height_bins) - 1, dtype=np.int64),
                            tp_per_bin=np.zeros(len(self.height_bins) - 1, dtype=np.int64))
        for errors in self.per_class.values():
            for cause, n in errors.false_positives.items():
                total.false_positives[cause] += n
            for cause, n in errors.false_negatives.items():
                total.false_negatives[cause] += n
            total.gt_per_bin += errors.gt_per_bin
            total.tp_per_bin += errors.tp_per_bin
        return total

    def to_json(self) -> dict[str, Any]:
        """Plain-Python dict: counts per cause, and ``recall_by_height`` (bin label -> recall or None, GT count)."""

        def one(errors: ClassErrors) -> dict[str, Any]:
            bins = [
                _bin_label(lo, hi) for lo, hi in zip(self.height_bins[:-1], self.height_bins[1:], strict=True)
            ]
            return {
                "false_positives": dict(errors.false_positives),
                "false_negatives": dict(errors.false_negatives),
                "recall_by_height": {
                    label: {"num_gt": int(n), "recall": (float(tp) / float(n)) if n else None}
                    for label, n, tp in zip(bins, errors.gt_per_bin, errors.tp_per_bin, strict=True)
                },
            }

        return {
            "score_threshold": float(self.score_threshold),
            **one(self.totals()),
            "per_class": {name: one(errors) for name, errors in self.per_class.items()},
        }


def _overlaps_other_class(box: np.ndarray, boxes_per_class: list[np.ndarray], own: int, thresholds: np.ndarray,
                          pixel_convention: PixelConvention) -> bool:
    """Whether ``box`` (4,) overlaps a box of a class other than ``own`` with IoU >= that class's threshold."""
    return any(
        other != own and len(boxes) > 0
        and bool((box_iou(box[None], boxes[:, :4], pixel_convention) >= thresholds[other]).any())
        for other, boxes in enumerate(boxes_per_class)
    )


def breakdown_errors(
    predictions: Sequence[Any],
    ground_truth: Sequence[Any],
    class_names: Sequence[str],
    *,
    iou_thresholds: PerClass = 0.5,
    score_threshold: float = 0.0,
    min_height: PerClass = 0.0,
    min_width: PerClass = 0.0,
    loc_iou: float = 0.1,
    height_bins: Sequence[float] = DEFAULT_HEIGHT_BINS,
    pixel_convention: PixelConvention = "tao",
) -> ErrorBreakdown:
    """Cause of every FP and FN of :func:`visionops.evaluation.kpi.evaluate_detections` with the same arguments.

    Args:
        predictions: one (K, 6+) array per image, ``x1, y1, x2, y2, score, class_id``.
        ground_truth: one (G, 5) array per image, ``x1, y1, x2, y2, class_id`` (negative class ids skipped).
        class_names, iou_thresholds, score_threshold, min_height, min_width, pixel_convention: as in
            ``evaluate_detections``; only detections with score >= ``score_threshold`` take part.
        loc_iou: the lowest IoU that still counts as "found, badly placed" rather than background / missed.
        height_bins: increasing GT height edges in pixels for the recall-by-height table.

    Returns:
        :class:`ErrorBreakdown`; per class, the FP causes sum to the KPI's FP and the FN causes to its FN.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction images but {len(ground_truth)} ground-truth images")
    edges = np.asarray(height_bins, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"height_bins must be at least two increasing edges, got {list(height_bins)}")
    if not 0.0 < loc_iou <= 1.0:
        raise ValueError(f"loc_iou must be in (0, 1], got {loc_iou}")
    class_names = list(class_names)
    num_classes = len(class_names)
    if num_classes == 0:
        raise ValueError("class_names is empty")
    iou_thr = _per_class_values(iou_thresholds, class_names, "iou_thresholds")
    min_h = _per_class_values(min_height, class_names, "min_height")
    min_w = _per_class_values(min_width, class_names, "min_width")
    per_class = {
        name: ClassErrors(gt_per_bin=np.zeros(len(edges) - 1, dtype=np.int64),
                          tp_per_bin=np.zeros(len(edges) - 1, dtype=np.int64))
        for name in class_names
    }

    for i, (pred, gt) in enumerate(zip(predictions, ground_truth, strict=True)):
        pred = _as_rows(pred, 6, f"predictions[{i}]")
        gt = _as_rows(gt, 5, f"ground_truth[{i}]")
        pred_cls = _class_ids(pred[:, 5], num_classes, f"predictions[{i}]", allow_negative=False)
        gt_cls = _class_ids(gt[:, 4], num_classes, f"ground_truth[{i}]", allow_negative=True)
        # The scored boxes of every class (size filter of their own class), kept detections only.
        dets: list[np.ndarray] = []
        gts: list[np.ndarray] = []
        for c in range(num_classes):
            d = pred[pred_cls == c]
            d = d[_size_ok(d, min_h[c], min_w[c]) & (d[:, 4] >= score_threshold)]
            dets.append(d[np.argsort(-d[:, 4], kind="stable")])
            g = gt[gt_cls == c]
            gts.append(g[_size_ok(g, min_h[c], min_w[c])])
        for c, name in enumerate(class_names):
            errors = per_class[name]
            d, g = dets[c], gts[c]
            tp = match_detections(d[:, :4], d[:, 4], g[:, :4], float(iou_thr[c]), pixel_convention=pixel_convention)
            same = box_iou(d[:, :4], g[:, :4], pixel_convention)  # (K, G)
            taken = np.zeros(len(g), dtype=bool)
            if len(d) and len(g):
                best = same.argmax(axis=1)
                taken[best[tp]] = True
            # FP causes
            for k in np.flatnonzero(~tp):
                best_iou = same[k].max() if len(g) else 0.0
                if best_iou >= iou_thr[c]:
                    cause = "duplicate"
                elif best_iou >= loc_iou:
                    cause = "localisation"
                elif _overlaps_other_class(d[k, :4], gts, c, iou_thr, pixel_convention):
                    cause = "confusion"
                else:
                    cause = "background"
                errors.false_positives[cause] += 1
            # FN causes and recall by height
            heights = g[:, 3] - g[:, 1]
            which = np.searchsorted(edges, heights, side="right") - 1  # bin i holds edges[i] <= h < edges[i + 1]
            binned = (which >= 0) & (which < len(edges) - 1)
            np.add.at(errors.gt_per_bin, which[binned], 1)
            np.add.at(errors.tp_per_bin, which[binned & taken], 1)
            for j in np.flatnonzero(~taken):
                if len(d) and same[:, j].max() >= loc_iou:
                    cause = "localisation"
                elif _overlaps_other_class(g[j, :4], dets, c, np.full(num_classes, iou_thr[c]), pixel_convention):
                    cause = "confusion"
                else:
                    cause = "missed"
                errors.false_negatives[cause] += 1
    return ErrorBreakdown(per_class=per_class, height_bins=tuple(float(e) for e in edges),
                          score_threshold=float(score_threshold))
