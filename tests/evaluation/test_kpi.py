"""2D detection KPIs: matching rules, hand-worked AP, thresholds, undefined values, and a slow reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from visionops.evaluation.kpi import (
    average_precision_11,
    average_precision_integrated,
    box_iou,
    evaluate_detections,
    match_detections,
)


def P(*rows) -> np.ndarray:
    """Prediction rows [x1, y1, x2, y2, score, class]."""
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def G(*rows) -> np.ndarray:
    """GT rows [x1, y1, x2, y2, class]."""
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def test_perfect_predictions():
    gts = [G([0, 0, 99, 99, 0], [200, 0, 260, 150, 1]), G([10, 10, 50, 90, 0])]
    preds = [P([0, 0, 99, 99, 0.9, 0], [200, 0, 260, 150, 0.8, 1]), P([10, 10, 50, 90, 0.7, 0])]
    r = evaluate_detections(preds, gts, ["car", "person"])
    assert r.map_11 == pytest.approx(1.0) and r.map_integrated == pytest.approx(1.0)
    for k in r.per_class.values():
        assert k.ap_11 == pytest.approx(1.0) and k.ap_integrated == pytest.approx(1.0)
        assert k.precision == k.recall == k.accuracy == 1.0
        assert k.fp == k.fn == 0
    assert (r.tp, r.fp, r.fn) == (3, 0, 0)
    assert r.precision == r.recall == r.accuracy == 1.0


def hand_worked_case():
    """3 GT, 4 detections of one class over two images.

    image 0: GT1 [0,0,99,99], GT2 [200,0,299,99]; image 1: GT3 [0,0,49,49].
    d1 0.9 image 0 [0,0,99,99]    -> TP (GT1, IoU 1)
    d2 0.8 image 0 [2,2,99,99]    -> FP (best GT is GT1, already taken: duplicate)
    d3 0.7 image 1 [0,0,49,49]    -> TP (GT3)
    d4 0.6 image 0 [250,0,349,99] -> FP (GT2 IoU with +1 pixels: 50*100 / (10000+10000-5000) = 1/3 < 0.5)
    GT2 is never found.
    """
    gts = [G([0, 0, 99, 99, 0], [200, 0, 299, 99, 0]), G([0, 0, 49, 49, 0])]
    preds = [P([2, 2, 99, 99, 0.8, 0], [250, 0, 349, 99, 0.6, 0], [0, 0, 99, 99, 0.9, 0]), P([0, 0, 49, 49, 0.7, 0])]
    return preds, gts


def test_hand_worked_ap():
    preds, gts = hand_worked_case()
    r = evaluate_detections(preds, gts, ["car"])
    k = r.per_class["car"]
    # Order by score: TP, FP, TP, FP.
    # cum TP 1 1 2 2, cum FP 0 1 1 2 -> precision 1, 1/2, 2/3, 1/2; recall 1/3, 1/3, 2/3, 2/3.
    np.testing.assert_allclose(k.pr_precision, [1, 1 / 2, 2 / 3, 1 / 2])
    np.testing.assert_allclose(k.pr_recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(k.pr_score, [0.9, 0.8, 0.7, 0.6])
    # 11-point: t = 0, .1, .2, .3 -> max precision over recall >= t = 1 (4 points);
    #           t = .4, .5, .6   -> points with recall 2/3: max(2/3, 1/2) = 2/3 (3 points);
    #           t = .7 ... 1.0   -> no point reaches t: 0 (4 points).
    # AP_11 = (4 * 1 + 3 * 2/3 + 4 * 0) / 11 = 6 / 11.
    assert k.ap_11 == pytest.approx(6 / 11)
    # Integrated: unique recalls 1/3, 2/3; interpolated precision 1 at 1/3, 2/3 at 2/3.
    # AP = (1/3 - 0) * 1 + (2/3 - 1/3) * 2/3 = 1/3 + 2/9 = 5/9.
    assert k.ap_integrated == pytest.approx(5 / 9)
    # Counts at score >= 0: TP 2, FP 2, FN 1 -> P 2/4, R 2/3, accuracy 2/5.
    assert (k.tp, k.fp, k.fn, k.num_gt, k.num_det) == (2, 2, 1, 3, 4)
    assert k.precision == pytest.approx(0.5) and k.recall == pytest.approx(2 / 3) and k.accuracy == pytest.approx(0.4)
    assert r.map_11 == pytest.approx(6 / 11) and r.map_integrated == pytest.approx(5 / 9)


def test_score_threshold_changes_counts_not_ap():
    preds, gts = hand_worked_case()
    r = evaluate_detections(preds, gts, ["car"], score_threshold=0.75)
    k = r.per_class["car"]
    # Kept: d1 (TP), d2 (FP) -> TP 1, FP 1, FN 2: P 1/2, R 1/3, accuracy 1/4.
    assert (k.tp, k.fp, k.fn) == (1, 1, 2)
    assert k.precision == pytest.approx(0.5) and k.recall == pytest.approx(1 / 3) and k.accuracy == pytest.approx(0.25)
    assert k.ap_integrated == pytest.approx(5 / 9)  # AP uses all detections
    # Threshold is inclusive: 0.7 keeps d3.
    assert evaluate_detections(preds, gts, ["car"], score_threshold=0.7).per_class["car"].tp == 2
    # Above every score: no detections -> precision defined 0, recall 0.
    k = evaluate_detections(preds, gts, ["car"], score_threshold=0.95).per_class["car"]
    assert (k.tp, k.fp, k.fn, k.precision, k.recall, k.accuracy) == (0, 0, 3, 0.0, 0.0, 0.0)


def test_match_detections_flags_in_input_order():
    preds, gts = hand_worked_case()
    tp = match_detections(preds[0][:, :4], preds[0][:, 4], gts[0][:, :4], 0.5)
    np.testing.assert_array_equal(tp, [False, False, True])  # d2, d4, d1 in input order


def test_duplicates_are_false_positives_regardless_of_input_order():
    gt = np.array([[0, 0, 99, 99]], float)
    dets = np.array([[1, 1, 99, 99], [0, 0, 99, 99], [0, 0, 98, 98]], float)
    tp = match_detections(dets, np.array([0.5, 0.9, 0.7]), gt, 0.5)
    np.testing.assert_array_equal(tp, [False, True, False])  # only the highest score is TP


def test_voc_rule_best_gt_taken_is_fp_even_if_another_gt_is_free():
    # Two overlapping GTs; the second detection's best GT (A) is already taken, and although B overlaps it
    # with IoU >= 0.5 it is still FP (TAO/VOC match only against the single highest-IoU GT).
    gt = np.array([[0, 0, 99, 99], [10, 0, 109, 99]], float)
    dets = np.array([[0, 0, 99, 99], [2, 0, 101, 99]], float)
    iou = box_iou(dets, gt)
    assert iou[1, 0] > iou[1, 1] >= 0.5
    np.testing.assert_array_equal(match_detections(dets, np.array([0.9, 0.8]), gt, 0.5), [True, False])


def test_pixel_conventions_and_inclusive_threshold():
    gt = np.array([[0, 0, 9, 9]], float)
    det = np.array([[0.4, 0, 9.4, 19]], float)
    # tao: det rounds to [0,0,9,19] = 10x20 px = 200, GT 10x10 = 100, intersection 100 -> IoU 0.5 exactly.
    assert box_iou(det, gt)[0, 0] == 0.5
    assert match_detections(det, np.array([1.0]), gt, 0.5)[0]  # >= threshold is a TP
    # continuous: intersection 8.6 * 9 = 77.4, areas 9 * 19 = 171 and 81 -> 77.4 / 174.6 = 0.443 -> FP.
    assert box_iou(det, gt, "continuous")[0, 0] == pytest.approx(77.4 / 174.6)
    assert not match_detections(det, np.array([1.0]), gt, 0.5, pixel_convention="continuous")[0]
    with pytest.raises(ValueError, match="pixel_convention"):
        box_iou(det, gt, "half")  # type: ignore[arg-type]


def test_iou_threshold_per_class():
    # Same geometry for both classes: det [0,0,99,69] vs GT [0,0,99,99] -> IoU 70/100 = 0.7 with +1 pixels.
    gts = [G([0, 0, 99, 99, 0], [300, 0, 399, 99, 1])]
    preds = [P([0, 0, 99, 68, 0.9, 0], [300, 0, 399, 68, 0.9, 1])]  # 69 px of 100 -> IoU 0.69
    r = evaluate_detections(preds, gts, ["car", "person"], iou_thresholds=[0.7, 0.5])
    assert (r.per_class["car"].tp, r.per_class["person"].tp) == (0, 1)
    assert r.per_class["car"].iou_threshold == 0.7
    r = evaluate_detections(preds, gts, ["car", "person"], iou_thresholds={"car": 0.5, "person": 0.7})
    assert (r.per_class["car"].tp, r.per_class["person"].tp) == (1, 0)
    with pytest.raises(ValueError, match="no value for classes"):
        evaluate_detections(preds, gts, ["car", "person"], iou_thresholds={"car": 0.5})
    with pytest.raises(ValueError, match="3 values for 2 classes"):
        evaluate_detections(preds, gts, ["car", "person"], iou_thresholds=[0.5, 0.5, 0.5])


def test_class_without_gt_excluded_from_map_but_fps_counted():
    gts = [G([0, 0, 99, 99, 0])]
    preds = [P([0, 0, 99, 99, 0.9, 0], [300, 300, 350, 350, 0.8, 1], [400, 300, 450, 350, 0.3, 1])]
    r = evaluate_detections(preds, gts, ["car", "sign", "bike"])
    sign, bike = r.per_class["sign"], r.per_class["bike"]
    assert sign.ap_11 is None and sign.ap_integrated is None and sign.recall is None
    assert (sign.tp, sign.fp, sign.fn, sign.precision, sign.accuracy) == (0, 2, 0, 0.0, 0.0)
    assert bike.num_det == 0 and bike.accuracy is None and bike.precision == 0.0
    assert r.map_11 == pytest.approx(1.0) and r.map_integrated == pytest.approx(1.0)  # only "car" has GT
    assert (r.tp, r.fp, r.fn) == (1, 2, 0)
    assert r.precision == pytest.approx(1 / 3) and r.recall == pytest.approx(1.0) and r.accuracy == pytest.approx(1 / 3)
    j = r.to_json(include_curves=True)
    json.dumps(j, allow_nan=False)
    assert j["per_class"]["sign"]["AP_11"] is None and j["per_class"]["bike"]["accuracy"] is None
    assert isinstance(j["mAP_integrated"], float)


def test_no_detections_and_empty_images():
    gts = [G([0, 0, 99, 99, 0]), np.zeros((0, 5)), []]
    preds = [np.zeros((0, 6)), [], np.zeros((0, 7))]
    r = evaluate_detections(preds, gts, ["car"])
    k = r.per_class["car"]
    assert (k.ap_11, k.ap_integrated, k.precision, k.recall, k.accuracy) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert (k.tp, k.fp, k.fn) == (0, 0, 1) and r.num_images == 3
    # Nothing at all: no class has GT -> mAP None, JSON-safe.
    r = evaluate_detections([[]], [[]], ["car"])
    assert r.map_11 is None and r.map_integrated is None and r.recall is None and r.accuracy is None
    json.dumps(r.to_json(), allow_nan=False)


def test_size_filter_applies_to_gt_and_detections():
    gts = [G([0, 0, 99, 99, 0], [200, 0, 240, 10, 0])]  # second GT is 10 px high
    preds = [P([0, 0, 99, 99, 0.9, 0], [300, 0, 340, 12, 0.8, 0])]  # unmatched 12 px high detection
    k = evaluate_detections(preds, gts, ["car"]).per_class["car"]
    assert (k.num_gt, k.tp, k.fp, k.fn) == (2, 1, 1, 1)
    k = evaluate_detections(preds, gts, ["car"], min_height=20).per_class["car"]
    assert (k.num_gt, k.num_det, k.tp, k.fp, k.fn) == (1, 1, 1, 0, 0)
    k = evaluate_detections(preds, gts, ["car"], min_width={"car": 50}).per_class["car"]
    assert (k.num_gt, k.num_det) == (1, 1)


def test_postprocess_rows_accepted_and_negative_gt_class_skipped():
    gts = [G([0, 0, 99, 99, 0], [0, 0, 50, 50, -1])]  # class -1 (don't care) is skipped like TAO
    preds = [np.array([[0, 0, 99, 99, 2.3, 0, 6]], float)]  # (K, 7) post-processing output
    r = evaluate_detections(preds, gts, ["car"])
    assert r.per_class["car"].num_gt == 1 and r.map_integrated == 1.0
    with pytest.raises(ValueError, match="out of range"):
        evaluate_detections([P([0, 0, 9, 9, 0.5, 3])], [[]], ["car"])
    with pytest.raises(ValueError, match="prediction images"):
        evaluate_detections([[]], [[], []], ["car"])


def test_pr_curve_rows():
    preds, gts = hand_worked_case()
    r = evaluate_detections(preds, gts, ["car", "sign"])
    rows = r.pr_curve_rows()
    assert len(rows) == 4 and set(rows[0]) == {"class", "recall", "precision", "threshold"}
    assert [row["threshold"] for row in rows] == [0.9, 0.8, 0.7, 0.6]
    assert all(isinstance(v, float) for row in rows for k, v in row.items() if k != "class")
    sub = r.pr_curve_rows(max_points_per_class=2)
    assert [row["threshold"] for row in sub] == [0.9, 0.6]


def test_ap_helpers_edge_cases():
    assert average_precision_11(np.zeros(0), np.zeros(0)) == 0.0
    assert average_precision_integrated(np.zeros(0), np.zeros(0)) == 0.0
    # Leading FP: recall 0 then 1 (1 GT) -> precision 0, 1/2 -> AP = 1 * 1/2.
    assert average_precision_integrated(np.array([0.0, 1.0]), np.array([0.0, 0.5])) == pytest.approx(0.5)
    # Recall exactly 0.3 reaches the 0.3 sample point (k/10 grid, not linspace's 0.30000000000000004).
    rec = np.array([1, 2, 3]) / 10
    assert average_precision_11(rec, np.ones(3)) == pytest.approx(4 / 11)


# --- independent slow reference ------------------------------------------------------------------------------


def _ref_iou(a, b, tao: bool) -> float:
    if tao:
        a = [round(float(v)) for v in a]  # Python round: half to even, like np.round
        b = [round(float(v)) for v in b]
    d = 1.0 if tao else 0.0
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + d)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + d)
    inter = iw * ih
    union = (a[2] - a[0] + d) * (a[3] - a[1] + d) + (b[2] - b[0] + d) * (b[3] - b[1] + d) - inter
    return inter / union if union > 0 else 0.0


def _ref_ap(preds, gts, cls, thr, tao):
    """TAO's global loop (all detections of the class by score, per-image 'taken' flags) + VOC devkit AP."""

    def valid(b) -> bool:  # TAO's box check with min size 0: inverted boxes (jitter can make them) are dropped
        return b[2] - b[0] >= 0 and b[3] - b[1] >= 0

    dets = [(float(p[4]), i, list(p[:4])) for i, ps in enumerate(preds) for p in ps if int(p[5]) == cls and valid(p)]
    dets.sort(key=lambda t: -t[0])  # Python sort is stable
    gt_by_img = {i: [list(g[:4]) for g in gs if int(g[4]) == cls and valid(g)] for i, gs in enumerate(gts)}
    n_gt = sum(len(v) for v in gt_by_img.values())
    taken = {i: [False] * len(v) for i, v in gt_by_img.items()}
    tps = []
    for _, i, box in dets:
        cand = gt_by_img[i]
        if not cand:
            tps.append(0)
            continue
        ious = [_ref_iou(box, g, tao) for g in cand]
        j = max(range(len(ious)), key=lambda m: (ious[m], -m))  # first max
        if ious[j] >= thr and not taken[i][j]:
            taken[i][j] = True
            tps.append(1)
        else:
            tps.append(0)
    if n_gt == 0:
        return None, None
    tp_c = fp_c = 0
    rec, prec = [], []
    for t in tps:
        tp_c += t
        fp_c += 1 - t
        rec.append(tp_c / n_gt)
        prec.append(tp_c / (tp_c + fp_c))
    # VOC2010 devkit: pad, make precision monotone from the right, sum where recall changes.
    mrec = [0.0, *rec, 1.0]
    mpre = [0.0, *prec, 0.0]
    for m in range(len(mpre) - 2, -1, -1):
        mpre[m] = max(mpre[m], mpre[m + 1])
    ap_int = sum((mrec[m + 1] - mrec[m]) * mpre[m + 1] for m in range(len(mrec) - 1) if mrec[m + 1] != mrec[m])
    ap_11 = 0.0
    for k in range(11):
        ps = [p for r, p in zip(rec, prec, strict=True) if r >= k / 10]
        ap_11 += max(ps) if ps else 0.0
    return ap_int, ap_11 / 11


@pytest.mark.parametrize("convention", ["tao", "continuous"])
def test_against_slow_reference_on_random_cases(convention):
    rng = np.random.default_rng(12345)
    for _case in range(50):
        num_images = int(rng.integers(1, 5))
        preds, gts = [], []
        for _ in range(num_images):
            n_gt, n_det = int(rng.integers(0, 6)), int(rng.integers(0, 9))
            g = np.zeros((n_gt, 5))
            g[:, :2] = rng.uniform(0, 60, (n_gt, 2))
            g[:, 2:4] = g[:, :2] + rng.uniform(5, 40, (n_gt, 2))
            g[:, 4] = rng.integers(0, 2, n_gt)
            # Detections: jittered copies of GT (some duplicates) plus random clutter, in a small area so that
            # partial overlaps around the threshold are common.
            d = np.zeros((n_det, 6))
            for m in range(n_det):
                if n_gt and rng.random() < 0.7:
                    src = g[rng.integers(0, n_gt)]
                    d[m, :4] = src[:4] + rng.normal(0, 4, 4)
                    d[m, 5] = src[4] if rng.random() < 0.9 else 1 - src[4]
                else:
                    d[m, :2] = rng.uniform(0, 60, 2)
                    d[m, 2:4] = d[m, :2] + rng.uniform(5, 40, 2)
                    d[m, 5] = rng.integers(0, 2)
            d[:, 4] = rng.random(n_det)
            preds.append(d)
            gts.append(g)
        thr = [0.5, 0.3]
        r = evaluate_detections(preds, gts, ["a", "b"], iou_thresholds=thr, pixel_convention=convention)
        for cls, name in enumerate(["a", "b"]):
            ref_int, ref_11 = _ref_ap(preds, gts, cls, thr[cls], convention == "tao")
            k = r.per_class[name]
            if ref_int is None:
                assert k.ap_integrated is None and k.ap_11 is None
            else:
                assert k.ap_integrated == pytest.approx(ref_int, abs=1e-12)
                assert k.ap_11 == pytest.approx(ref_11, abs=1e-12)
