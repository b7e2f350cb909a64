"""FP/FN causes: hand-built cases per cause, and on random data the causes add up to the KPI's FP and FN."""

from __future__ import annotations

import numpy as np
import pytest

from visionops.evaluation.detection_errors import FN_CAUSES, FP_CAUSES, breakdown_errors
from visionops.evaluation.kpi import evaluate_detections

CLASSES = ["person", "forklift"]


def _one_image_case():
    # GT: person A (0..40 x 0..80), person C (100..140 x 0..60), person D (200..240 x 0..100), forklift B.
    gt = np.array([
        [0, 0, 40, 80, 0],
        [100, 0, 140, 60, 0],
        [200, 0, 240, 100, 0],
        [300, 0, 400, 50, 1],
    ], dtype=np.float64)
    dets = np.array([
        [0, 0, 40, 80, 0.9, 0],        # person on A: TP
        [0, 2, 40, 82, 0.8, 0],        # person on A again: duplicate
        [200, 60, 240, 130, 0.7, 0],   # person half on D (IoU ~0.27): localisation FP, D a localisation FN
        [500, 0, 540, 80, 0.6, 0],     # person on nothing: background
        [100, 0, 140, 60, 0.5, 1],     # forklift exactly on person C: confusion FP, C a confusion FN
        [0, 0, 40, 80, 0.05, 0],       # below the score threshold: not counted at all
    ], dtype=np.float64)
    return dets, gt


def test_each_cause_on_a_hand_built_image():
    dets, gt = _one_image_case()
    result = breakdown_errors([dets], [gt], CLASSES, score_threshold=0.1, height_bins=(0, 70, 90, np.inf))
    person, forklift = result.per_class["person"], result.per_class["forklift"]
    assert person.false_positives == {"duplicate": 1, "localisation": 1, "confusion": 0, "background": 1}
    assert person.false_negatives == {"localisation": 1, "confusion": 1, "missed": 0}
    assert forklift.false_positives == {"duplicate": 0, "localisation": 0, "confusion": 1, "background": 0}
    assert forklift.false_negatives == {"localisation": 0, "confusion": 0, "missed": 1}  # B: nothing near it
    # person heights 80 (A, found), 60 (C), 100 (D); forklift 50
    np.testing.assert_array_equal(person.gt_per_bin, [1, 1, 1])
    np.testing.assert_array_equal(person.tp_per_bin, [0, 1, 0])
    out = result.to_json()
    assert out["false_positives"] == {"duplicate": 1, "localisation": 1, "confusion": 1, "background": 1}
    assert out["false_negatives"] == {"localisation": 1, "confusion": 1, "missed": 1}
    assert out["recall_by_height"] == {"0-70": {"num_gt": 2, "recall": 0.0}, "70-90": {"num_gt": 1, "recall": 1.0},
                                       "90-inf": {"num_gt": 1, "recall": 0.0}}


def test_causes_add_up_to_the_kpi_counts_on_random_data():
    rng = np.random.default_rng(0)
    predictions, ground_truth = [], []
    for _ in range(40):
        g = rng.uniform(0, 200, (rng.integers(0, 6), 2))
        gt = np.concatenate([g, g + rng.uniform(5, 60, g.shape), rng.integers(0, 2, (len(g), 1))], 1)
        # detections: jittered copies of some GT (some with the wrong class) plus clutter
        near = gt[rng.random(len(gt)) < 0.8].copy()
        near[:, :4] += rng.normal(0, 6, (len(near), 4))
        flip = rng.random(len(near)) < 0.2
        near[flip, 4] = 1 - near[flip, 4]
        clutter = rng.uniform(0, 200, (rng.integers(0, 4), 2))
        clutter = np.concatenate([clutter, clutter + rng.uniform(5, 60, clutter.shape),
                                  rng.integers(0, 2, (len(clutter), 1))], 1)
        boxes = np.concatenate([near, clutter, near[:2] + rng.normal(0, 3, near[:2].shape) * [1, 1, 1, 1, 0]])
        scores = rng.random((len(boxes), 1))
        predictions.append(np.concatenate([boxes[:, :4], scores, boxes[:, 4:5]], 1))
        ground_truth.append(gt)
    kwargs = {"iou_thresholds": [0.5, 0.7], "score_threshold": 0.3, "min_height": 10.0, "min_width": [0.0, 8.0]}
    kpi = evaluate_detections(predictions, ground_truth, CLASSES, **kwargs)
    errors = breakdown_errors(predictions, ground_truth, CLASSES, **kwargs, height_bins=(0, 30, np.inf))
    for name in CLASSES:
        e, k = errors.per_class[name], kpi.per_class[name]
        assert sum(e.false_positives.values()) == k.fp and sum(e.false_negatives.values()) == k.fn
        assert e.gt_per_bin.sum() == k.num_gt and e.tp_per_bin.sum() == k.tp
        assert set(e.false_positives) == set(FP_CAUSES) and set(e.false_negatives) == set(FN_CAUSES)
    # the random data exercises every cause somewhere
    totals = errors.totals()
    assert all(n > 0 for n in totals.false_positives.values()), totals.false_positives
    assert all(n > 0 for n in totals.false_negatives.values()), totals.false_negatives


def test_boxes_outside_the_height_bins_are_not_binned():
    gt = np.array([[0, 0, 10, 10, 0], [0, 0, 10, 50, 0]], dtype=np.float64)
    result = breakdown_errors([np.zeros((0, 6))], [gt], CLASSES, height_bins=(20, 40))
    assert result.per_class["person"].gt_per_bin.tolist() == [0]
    assert result.per_class["person"].false_negatives["missed"] == 2  # still counted as FN
    assert result.to_json()["recall_by_height"] == {"20-40": {"num_gt": 0, "recall": None}}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"height_bins": (40, 20)}, "height_bins"),
    ({"height_bins": (0,)}, "height_bins"),
    ({"loc_iou": 0.0}, "loc_iou"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        breakdown_errors([np.zeros((0, 6))], [np.zeros((0, 5))], CLASSES, **kwargs)


def test_image_count_mismatch_is_refused():
    with pytest.raises(ValueError, match="ground-truth images"):
        breakdown_errors([np.zeros((0, 6))], [], CLASSES)


def test_error_figure_bars_add_up_and_the_png_has_a_row_per_model(tmp_path):
    from PIL import Image

    from visionops.evaluation.error_plot import bar_counts, plot_error_breakdown

    dets, gt = _one_image_case()
    kwargs = {"score_threshold": 0.1}
    kpi = evaluate_detections([dets], [gt], CLASSES, **kwargs)
    errors = breakdown_errors([dets], [gt], CLASSES, **kwargs)
    gt_bars, det_bars = bar_counts(kpi, errors, "ground truth"), bar_counts(kpi, errors, "detections")
    for c, name in enumerate(CLASSES):
        assert sum(part[c] for part in gt_bars.values()) == kpi.per_class[name].num_gt
        assert sum(part[c] for part in det_bars.values()) == kpi.per_class[name].tp + kpi.per_class[name].fp
    assert det_bars["duplicate"] == [1, 0] and gt_bars["missed"] == [0, 1]
    with pytest.raises(ValueError, match="what"):
        bar_counts(kpi, errors, "boxes")
    one = plot_error_breakdown({"phase1": (kpi, errors)}, tmp_path / "one.png")
    two = plot_error_breakdown({"phase1": (kpi, errors), "retrained": (kpi, errors)}, tmp_path / "sub" / "two.png")
    with Image.open(one) as a, Image.open(two) as b:
        assert a.size[0] == b.size[0] and b.size[1] > 1.5 * a.size[1]
    assert not list((tmp_path / "sub").glob("*.tmp*"))
