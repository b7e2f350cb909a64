"""2D detection KPIs: Pascal-VOC AP (TAO DetectNet_v2 evaluation) and the DashCamNet-card precision/recall/accuracy.

Spec: ``specs/detectnet_v2_and_pruning.md`` section 6. Boxes are ``x1, y1, x2, y2`` in pixels.

Pipeline, per class:

1. Size filter (TAO ``evaluation_box_config``): GT boxes *and* detections with height < ``min_height`` or
   width < ``min_width`` (unrounded pixels) are removed before matching, independently of each other. With the
   default 0 this still drops inverted boxes (x2 < x1 or y2 < y1), as TAO's check does.
2. Matching per image (:func:`match_detections`): detections by confidence desc, each matched to its
   highest-IoU GT; TP if IoU >= the class threshold and that GT is still free, else FP (duplicates are FP).
   ``pixel_convention="tao"`` rounds coordinates to integers and uses inclusive pixels (+1), as TAO does.
3. Detections of all images sorted by confidence desc (stable: ties keep image order, then input order) ->
   cumulative precision/recall curve -> AP in two modes:

   - ``ap_11`` (TAO ``SAMPLE``, VOC2007): mean over t in {0, 0.1, ..., 1} of the max precision at recall >= t
     (0 where no point reaches t). The grid is ``k / 10`` so recalls like 3/10 compare exactly; TAO's
     ``np.linspace`` grid has 0.30000000000000004 and misses a recall of exactly 0.3.
   - ``ap_integrated`` (TAO ``INTEGRATE``, VOC2010+): area under the interpolated curve,
     ``sum_j (r_j - r_{j-1}) * max{precision at recall >= r_j}`` over the unique recalls r_j, r_0 = 0.
     TAO's own INTEGRATE code (inherited from ssd_keras) differs on small GT counts: it skips the segment
     [0, first recall] and takes each segment's height from its left end, so 2 GT found perfectly score 0.5
     there and 1.0 here; with hundreds of GT per class the two agree to ~1/num_gt.

4. Counts at ``score_threshold`` (detections with score >= threshold; matching is greedy in score order, so
   thresholding after matching equals matching only the kept detections): TP, FP, FN = num_gt - TP;
   precision = TP / (TP + FP), recall = TP / (TP + FN), accuracy = TP / (TP + FP + FN) (card definitions,
   UNVERIFIED in the spec).

Undefined values: precision is defined as 0 when there are no detections (as TAO's ``np.where(tp + fp > 0, ...,
0)``); a class without GT gets ``None`` for AP and recall, is left out of mAP, and its FPs still count (in its
precision and in the micro averages). Accuracy is ``None`` only when TP + FP + FN = 0. mAP is the unweighted mean
over classes with GT (``None`` if none has GT); micro precision/recall/accuracy pool the counts of all classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

PixelConvention = Literal["tao", "continuous"]
PIXEL_CONVENTIONS: tuple[str, ...] = ("tao", "continuous")

PerClass = float | Sequence[float] | Mapping[str, float]

_RECALL_POINTS_11 = np.arange(11, dtype=np.float64) / 10.0  # exact k/10, see module docstring


def box_iou(a: np.ndarray, b: np.ndarray, pixel_convention: PixelConvention = "tao") -> np.ndarray:
    """IoU matrix between boxes ``a`` (n, 4) and ``b`` (m, 4), x1y1x2y2 pixels -> (n, m) float64.

    ``"tao"``: coordinates rounded to integers (half to even, as TAO's ``round()`` on numpy floats), then the
    inclusive-pixel convention: a box from x1 to x2 covers ``x2 - x1 + 1`` pixels, the intersection likewise.
    ``"continuous"``: plain area IoU on the unrounded coordinates. Pairs with a non-positive union get 0.
    """
    if pixel_convention not in PIXEL_CONVENTIONS:
        raise ValueError(f"pixel_convention must be one of {PIXEL_CONVENTIONS}, got {pixel_convention!r}")
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if pixel_convention == "tao":
        a, b, d = np.round(a), np.round(b), 1.0
    else:
        d = 0.0
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + d
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + d
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + d) * (a[:, 3] - a[:, 1] + d)
    area_b = (b[:, 2] - b[:, 0] + d) * (b[:, 3] - b[:, 1] + d)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def match_detections(
    dets: np.ndarray,
    scores: np.ndarray,
    gts: np.ndarray,
    iou_threshold: float = 0.5,
    *,
    pixel_convention: PixelConvention = "tao",
) -> np.ndarray:
    """Greedy VOC/TAO matching of one image's detections of one class to that class's GT.

    Detections are visited by score desc (stable: equal scores in input order). Each is compared with its
    highest-IoU GT (first one on IoU ties); it is a TP iff that IoU >= ``iou_threshold`` and that GT has not been
    taken by an earlier detection -- otherwise FP, even when another free GT also overlaps enough (VOC rule).

    Args:
        dets: (K, 4) detection boxes x1y1x2y2 px.
        scores: (K,) confidences.
        gts: (G, 4) GT boxes x1y1x2y2 px.
        iou_threshold: minimum IoU for a TP (inclusive).
        pixel_convention: see :func:`box_iou`.

    Returns:
        (K,) bool TP flags in the *input* order of ``dets``.
    """
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    gts = np.asarray(gts, dtype=np.float64).reshape(-1, 4)
    if len(scores) != len(dets):
        raise ValueError(f"{len(dets)} detections but {len(scores)} scores")
    tp = np.zeros(len(dets), dtype=bool)
    if len(dets) == 0 or len(gts) == 0:
        return tp
    iou = box_iou(dets, gts, pixel_convention)
    best_gt = iou.argmax(axis=1)
    best_iou = iou[np.arange(len(dets)), best_gt]
    taken = np.zeros(len(gts), dtype=bool)
    for k in np.argsort(-scores, kind="stable"):
        j = best_gt[k]
        if best_iou[k] >= iou_threshold and not taken[j]:
            taken[j] = True
            tp[k] = True
    return tp


def average_precision_11(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point AP from a cumulative PR curve (arrays (K,), detections by score desc)."""
    if len(recall) == 0:
        return 0.0
    total = 0.0
    for t in _RECALL_POINTS_11:
        reached = precision[recall >= t]
        total += float(reached.max()) if reached.size else 0.0
    return total / len(_RECALL_POINTS_11)


def average_precision_integrated(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the interpolated PR curve over the unique recall values (arrays (K,), recall
    non-decreasing). Interpolated precision at r = max precision over points with recall >= r."""
    if len(recall) == 0:
        return 0.0
    # Max precision from each point to the end == max over recall >= that point's recall, because recall is
    # non-decreasing and, for repeated recalls, np.unique's first index covers every point sharing the value.
    p_interp = np.maximum.accumulate(precision[::-1])[::-1]
    r_unique, first = np.unique(recall, return_index=True)
    widths = np.diff(r_unique, prepend=0.0)
    return float(np.sum(widths * p_interp[first]))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


@dataclass
class ClassKpi:
    """KPIs of one class.

    Attributes:
        name: class name.
        num_gt: GT boxes after the size filter.
        num_det: detections after the size filter (all scores).
        iou_threshold: matching threshold used.
        ap_11, ap_integrated: average precision in [0, 1]; ``None`` without GT.
        tp, fp, fn: counts among detections with score >= the score threshold (fn = num_gt - tp).
        precision: TP / (TP + FP); 0 when there are no such detections.
        recall: TP / (TP + FN); ``None`` without GT.
        accuracy: TP / (TP + FP + FN); ``None`` when that is 0 / 0.
        pr_recall, pr_precision, pr_score: (num_det,) cumulative curve, detections by score desc (all scores);
            empty without GT (recall undefined).
    """

    name: str
    num_gt: int
    num_det: int
    iou_threshold: float
    ap_11: float | None
    ap_integrated: float | None
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float | None
    accuracy: float | None
    pr_recall: np.ndarray = field(repr=False)
    pr_precision: np.ndarray = field(repr=False)
    pr_score: np.ndarray = field(repr=False)

    def to_json(self, include_curve: bool = False) -> dict[str, Any]:
        """Plain-Python dict (floats, ints, None; never NaN)."""
        out: dict[str, Any] = {
            "num_gt": self.num_gt,
            "num_det": self.num_det,
            "iou_threshold": float(self.iou_threshold),
            "AP_11": _f(self.ap_11),
            "AP_integrated": _f(self.ap_integrated),
            "TP": self.tp,
            "FP": self.fp,
            "FN": self.fn,
            "precision": _f(self.precision),
            "recall": _f(self.recall),
            "accuracy": _f(self.accuracy),
        }
        if include_curve:
            out["pr_curve"] = {
                "recall": [float(v) for v in self.pr_recall],
                "precision": [float(v) for v in self.pr_precision],
                "score": [float(v) for v in self.pr_score],
            }
        return out


def _f(v: float | None) -> float | None:
    """float, with None for None and for any non-finite value (JSON has no NaN)."""
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass
class KpiResult:
    """Detection KPIs of a data set.

    Attributes:
        per_class: class name -> :class:`ClassKpi`, in ``class_names`` order.
        map_11, map_integrated: mean AP over classes with GT; ``None`` if no class has GT.
        tp, fp, fn, precision, recall, accuracy: micro averages (counts pooled over classes) at the score
            threshold; same undefined-value rules as :class:`ClassKpi`.
        score_threshold: threshold of the counts (score >= threshold).
        pixel_convention: IoU convention of the matching.
        num_images: images evaluated.
    """

    per_class: dict[str, ClassKpi]
    map_11: float | None
    map_integrated: float | None
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float | None
    accuracy: float | None
    score_threshold: float
    pixel_convention: str
    num_images: int

    def to_json(self, include_curves: bool = False) -> dict[str, Any]:
        """Plain-Python dict for ``json.dump`` / DVC metrics: floats, ints and None only (no NaN)."""
        return {
            "mAP_11": _f(self.map_11),
            "mAP_integrated": _f(self.map_integrated),
            "TP": self.tp,
            "FP": self.fp,
            "FN": self.fn,
            "precision": _f(self.precision),
            "recall": _f(self.recall),
            "accuracy": _f(self.accuracy),
            "score_threshold": float(self.score_threshold),
            "pixel_convention": self.pixel_convention,
            "num_images": self.num_images,
            "per_class": {name: k.to_json(include_curves) for name, k in self.per_class.items()},
        }

    def pr_curve_rows(self, max_points_per_class: int | None = None) -> list[dict[str, Any]]:
        """PR curves as flat rows ``{"class", "recall", "precision", "threshold"}`` (DVC ``plots`` friendly).

        One row per detection (by score desc) of every class with GT; ``threshold`` is the detection's score,
        i.e. the curve point obtained by keeping scores >= it. ``max_points_per_class`` subsamples long curves
        evenly (first and last points kept).
        """
        rows: list[dict[str, Any]] = []
        for name, k in self.per_class.items():
            n = len(k.pr_recall)
            idx = np.arange(n)
            if max_points_per_class is not None and n > max_points_per_class:
                idx = np.unique(np.linspace(0, n - 1, max(max_points_per_class, 2)).round().astype(np.intp))
            rows.extend(
                {
                    "class": name,
                    "recall": float(k.pr_recall[i]),
                    "precision": float(k.pr_precision[i]),
                    "threshold": float(k.pr_score[i]),
                }
                for i in idx
            )
        return rows


def _per_class_values(value: PerClass, class_names: Sequence[str], what: str) -> np.ndarray:
    """float | sequence (one per class) | mapping name -> value  ->  (C,) float64."""
    if isinstance(value, Mapping):
        missing = [c for c in class_names if c not in value]
        if missing:
            raise ValueError(f"{what}: no value for classes {missing}")
        return np.array([float(value[c]) for c in class_names], dtype=np.float64)
    if isinstance(value, (int, float, np.floating, np.integer)):
        return np.full(len(class_names), float(value), dtype=np.float64)
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    if len(values) != len(class_names):
        raise ValueError(f"{what}: got {len(values)} values for {len(class_names)} classes")
    return values


def _as_rows(x: Any, min_cols: int, what: str) -> np.ndarray:
    """Array-like -> (n, >= min_cols) float64; empty inputs of any shape -> (0, min_cols)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, min_cols), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < min_cols:
        raise ValueError(f"{what} must be (n, {min_cols}+), got shape {arr.shape}")
    return arr


def _class_ids(col: np.ndarray, num_classes: int, what: str, allow_negative: bool) -> np.ndarray:
    ids = np.round(col).astype(np.int64)
    if not np.array_equal(ids, col):
        raise ValueError(f"{what}: class ids must be integers")
    bad = (ids >= num_classes) | ((ids < 0) & (not allow_negative))
    if bad.any():
        raise ValueError(f"{what}: class ids out of range [0, {num_classes}): {np.unique(ids[bad]).tolist()}")
    return ids


def _size_ok(boxes: np.ndarray, min_h: float, min_w: float) -> np.ndarray:
    """TAO ``_check_if_bbox_is_valid`` lower bounds on the unrounded box: keep h >= min_h and w >= min_w."""
    return (boxes[:, 3] - boxes[:, 1] >= min_h) & (boxes[:, 2] - boxes[:, 0] >= min_w)


def evaluate_detections(
    predictions: Sequence[Any],
    ground_truth: Sequence[Any],
    class_names: Sequence[str],
    *,
    iou_thresholds: PerClass = 0.5,
    score_threshold: float = 0.0,
    min_height: PerClass = 0.0,
    min_width: PerClass = 0.0,
    pixel_convention: PixelConvention = "tao",
) -> KpiResult:
    """AP (11-point and integrated), mAP and precision/recall/accuracy of 2D detections.

    Args:
        predictions: one array per image, (K, 6) ``x1, y1, x2, y2, score, class_id`` (pixels; class_id indexes
            ``class_names``). Extra columns are ignored, so :func:`visionops.models.detectnet_v2.postprocess.
            postprocess_batch` output (K, 7) can be passed as is.
        ground_truth: one array per image, (G, 5) ``x1, y1, x2, y2, class_id``; rows with a negative class_id
            are skipped (TAO skips class ``-1``). Same length as ``predictions``.
        class_names: class order.
        iou_thresholds: matching IoU threshold (inclusive), one for all classes, one per class (sequence) or
            a mapping name -> threshold.
        score_threshold: detections with score >= this count for TP/FP/FN, precision, recall, accuracy
            (AP always uses every detection).
        min_height, min_width: per-class size filter in pixels (same forms as ``iou_thresholds``) applied to GT
            and detections before matching; 0 = no filter.
        pixel_convention: ``"tao"`` (rounded, +1 pixel IoU) or ``"continuous"``; see :func:`box_iou`.

    Returns:
        :class:`KpiResult`.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction images but {len(ground_truth)} ground-truth images")
    if pixel_convention not in PIXEL_CONVENTIONS:
        raise ValueError(f"pixel_convention must be one of {PIXEL_CONVENTIONS}, got {pixel_convention!r}")
    class_names = list(class_names)
    num_classes = len(class_names)
    if num_classes == 0:
        raise ValueError("class_names is empty")
    iou_thr = _per_class_values(iou_thresholds, class_names, "iou_thresholds")
    min_h = _per_class_values(min_height, class_names, "min_height")
    min_w = _per_class_values(min_width, class_names, "min_width")

    scores_per_class: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    tp_per_class: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    num_gt = np.zeros(num_classes, dtype=np.int64)

    for i, (pred, gt) in enumerate(zip(predictions, ground_truth, strict=True)):
        pred = _as_rows(pred, 6, f"predictions[{i}]")
        gt = _as_rows(gt, 5, f"ground_truth[{i}]")
        pred_cls = _class_ids(pred[:, 5], num_classes, f"predictions[{i}]", allow_negative=False)
        gt_cls = _class_ids(gt[:, 4], num_classes, f"ground_truth[{i}]", allow_negative=True)
        for c in range(num_classes):
            d = pred[pred_cls == c]
            g = gt[gt_cls == c]
            d = d[_size_ok(d, min_h[c], min_w[c])]
            g = g[_size_ok(g, min_h[c], min_w[c])]
            num_gt[c] += len(g)
            if len(d) == 0:
                continue
            # Hand the detections over already in score order (stable) so that the global stable sort below
            # keeps, among equal scores, image order and then this matching order.
            order = np.argsort(-d[:, 4], kind="stable")
            d = d[order]
            tp = match_detections(d[:, :4], d[:, 4], g[:, :4], float(iou_thr[c]), pixel_convention=pixel_convention)
            scores_per_class[c].append(d[:, 4])
            tp_per_class[c].append(tp)

    per_class: dict[str, ClassKpi] = {}
    for c, name in enumerate(class_names):
        scores = np.concatenate(scores_per_class[c]) if scores_per_class[c] else np.zeros(0)
        tp = np.concatenate(tp_per_class[c]) if tp_per_class[c] else np.zeros(0, dtype=bool)
        order = np.argsort(-scores, kind="stable")
        scores, tp = scores[order], tp[order]
        cum_tp = np.cumsum(tp)
        cum_fp = np.cumsum(~tp)
        n_gt = int(num_gt[c])
        above = scores >= score_threshold
        n_tp = int(tp[above].sum())
        n_fp = int(above.sum()) - n_tp
        n_fn = n_gt - n_tp
        if n_gt > 0:
            pr_precision = cum_tp / np.maximum(cum_tp + cum_fp, 1)  # denominator is k + 1 >= 1 anyway
            pr_recall = cum_tp / n_gt
            ap_11 = average_precision_11(pr_recall, pr_precision)
            ap_int = average_precision_integrated(pr_recall, pr_precision)
            pr_score = scores
        else:
            pr_precision = pr_recall = pr_score = np.zeros(0)
            ap_11 = ap_int = None
        per_class[name] = ClassKpi(
            name=name,
            num_gt=n_gt,
            num_det=len(scores),
            iou_threshold=float(iou_thr[c]),
            ap_11=ap_11,
            ap_integrated=ap_int,
            tp=n_tp,
            fp=n_fp,
            fn=n_fn,
            precision=_ratio(n_tp, n_tp + n_fp) or 0.0,
            recall=_ratio(n_tp, n_tp + n_fn),
            accuracy=_ratio(n_tp, n_tp + n_fp + n_fn),
            pr_recall=pr_recall,
            pr_precision=pr_precision,
            pr_score=pr_score,
        )

    with_gt = [k for k in per_class.values() if k.num_gt > 0]
    tp_all = sum(k.tp for k in per_class.values())
    fp_all = sum(k.fp for k in per_class.values())
    fn_all = sum(k.fn for k in per_class.values())
    return KpiResult(
        per_class=per_class,
        map_11=float(np.mean([k.ap_11 for k in with_gt])) if with_gt else None,
        map_integrated=float(np.mean([k.ap_integrated for k in with_gt])) if with_gt else None,
        tp=tp_all,
        fp=fp_all,
        fn=fn_all,
        precision=_ratio(tp_all, tp_all + fp_all) or 0.0,
        recall=_ratio(tp_all, tp_all + fn_all),
        accuracy=_ratio(tp_all, tp_all + fp_all + fn_all),
        score_threshold=float(score_threshold),
        pixel_convention=pixel_convention,
        num_images=len(predictions),
    )
