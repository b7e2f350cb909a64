"""HOTA with the AI City 2025 protocol: invariants, hand-computed cases, the skip and weighting rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.evaluation.aicity_format import TrackFileError
from visionops.evaluation.hota import METRICS, evaluate_hota, evaluate_sequence, sequence_data
from visionops.evaluation.iou3d import iou3d_pairs

ALPHAS = 19


def det(scene=17, cls=0, oid=1, frame=0, x=0.0, y=0.0, z=0.5, w=1.0, l=1.0, h=1.0, yaw=0.0) -> list[float]:
    return [scene, cls, oid, frame, x, y, z, w, l, h, yaw]


def rows(*dets: list[float]) -> np.ndarray:
    return np.array(dets, dtype=np.float64).reshape(-1, 11)


def track(oid: int, frames, x: float, cls: int = 0, scene: int = 17) -> list[list[float]]:
    """A unit cube moving along y, one row per frame, at lane x (lanes 5 m apart never overlap)."""
    return [det(scene, cls, oid, f, x, 0.1 * f) for f in frames]


def two_people(frames=range(20)) -> np.ndarray:
    return rows(*track(1, frames, 0.0), *track(2, frames, 5.0))


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


# ------------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------------


@st.composite
def _scenes(draw):
    """Random GT: up to 8 objects of random classes and scenes in separate lanes, each on random frames."""
    n_objects = draw(st.integers(1, 8))
    out = []
    for i in range(n_objects):
        cls = draw(st.integers(0, 5))
        oid = draw(st.integers(0, 50))
        frames = draw(st.sets(st.integers(0, 40), min_size=1, max_size=15))
        w, l, h = draw(st.tuples(*[st.floats(0.3, 3.0)] * 3))
        yaw = draw(st.floats(-math.pi, math.pi))
        scene = draw(st.sampled_from([17, 22]))
        for f in sorted(frames):
            # Lane per object (10 m apart): boxes of different objects never touch.
            out.append(det(scene, cls, oid * 10 + i, f, 10.0 * i, 0.05 * f, h / 2, w, l, h, yaw))
    return rows(*out)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(gt=_scenes())
def test_perfect_tracks_score_100(gt):
    result = evaluate_hota(gt, gt.copy())
    for name in METRICS:
        assert result.overall[name] == pytest.approx(100.0, abs=1e-6), name
    for metrics in result.per_class.values():
        assert metrics["HOTA"] == pytest.approx(100.0, abs=1e-6)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(gt=_scenes(), offset=st.integers(1, 1000))
def test_renumbering_predicted_ids_changes_nothing(gt, offset):
    pred = gt.copy()
    pred[:, 2] = pred[:, 2] * 3 + offset  # any injective relabelling
    assert evaluate_hota(gt, pred).overall == pytest.approx(evaluate_hota(gt, gt).overall)


def test_empty_frames_change_no_metric():
    # evaluate_hota passes trackeval only the frames where either side has a row; trackeval's dense
    # sequence (every frame 0..max, empty ones included) must give the same numbers.
    rng = np.random.default_rng(3)
    gt = rows(*track(1, range(0, 30, 2), 0.0), *track(2, range(10, 60, 3), 5.0))
    pred = gt[rng.uniform(size=len(gt)) > 0.2].copy()
    pred[:, 4] += rng.normal(0, 0.2, len(pred))
    pred[pred[:, 3] > 30, 2] = 9  # an id switch
    sparse = sequence_data(gt, pred, iou3d_pairs)
    frames = sorted(set(gt[:, 3]) | set(pred[:, 3]))
    dense = {key: [] for key in ("gt_ids", "tracker_ids", "similarity_scores")}
    for f in range(int(max(frames)) + 1):
        if f in frames:
            t = frames.index(f)
            for key in dense:
                dense[key].append(sparse[key][t])
        else:
            dense["gt_ids"].append(np.zeros(0, int))
            dense["tracker_ids"].append(np.zeros(0, int))
            dense["similarity_scores"].append(np.zeros((0, 0)))
    dense = {**sparse, **dense, "num_timesteps": int(max(frames)) + 1}
    assert evaluate_sequence(dense)[0] == pytest.approx(evaluate_sequence(sparse)[0])


# ------------------------------------------------------------------------------------------------
# Behaviour the issue asks for
# ------------------------------------------------------------------------------------------------


def test_swapping_ids_half_way_lowers_assa_not_deta():
    gt = two_people()
    pred = gt.copy()
    late = pred[:, 3] >= 10
    pred[late, 2] = 3 - pred[late, 2]  # 1 <-> 2 from frame 10 on
    result = evaluate_hota(gt, pred).overall
    assert result["DetA"] == approx(100.0)
    assert result["LocA"] == approx(100.0)
    # Each GT id matches each predicted id on 10 of its 20 frames: A = 10 / (20 + 20 - 10) = 1/3.
    assert result["AssA"] == approx(100 / 3)
    assert result["HOTA"] == approx(100 * math.sqrt(1 / 3))
    assert result["MOTA"] == approx(100 * (40 - 2) / 40)  # two id switches


def test_small_shift_lowers_loca_only():
    gt = two_people()
    pred = gt.copy()
    pred[:, 4] += 0.01  # IoU (1 - d) / (1 + d) = 0.980 >= every alpha
    result = evaluate_hota(gt, pred).overall
    assert result["LocA"] == approx(100 * 0.99 / 1.01)
    assert result["DetA"] == approx(100.0)
    assert result["AssA"] == approx(100.0)


def test_shift_past_iou_thresholds_lowers_deta():
    gt = two_people()
    pred = gt.copy()
    pred[:, 4] += 0.3  # IoU 0.7 / 1.3 = 0.538: matched for alpha 0.05 .. 0.50 (10 of 19), missed above
    iou = 0.7 / 1.3
    result = evaluate_hota(gt, pred).overall
    # alpha <= 0.5: TP = all, DetA = 1; alpha > 0.5: TP = 0, DetA = 0. AssA is 1 where TP > 0, else 0.
    assert result["DetA"] == approx(100 * 10 / ALPHAS)
    assert result["AssA"] == approx(100 * 10 / ALPHAS)
    assert result["HOTA"] == approx(100 * 10 / ALPHAS)
    # LocA is 1 (trackeval's convention) where nothing matches.
    assert result["LocA"] == approx(100 * (10 * iou + 9) / ALPHAS)
    assert result["MOTA"] == approx(100.0)  # CLEAR's threshold 0.5 still matches


def test_location_protocol_uses_centre_distance():
    gt = two_people()
    pred = gt.copy()
    pred[:, 4] += 0.55  # sim = 1 - 0.55 / 2 = 0.725: matched for alpha 0.05 .. 0.70 (14 of 19)
    result = evaluate_hota(gt, pred, protocol="location").overall
    assert result["DetA"] == approx(100 * 14 / ALPHAS)
    assert result["LocA"] == approx(100 * (14 * 0.725 + 5) / ALPHAS)
    # The same shift has IoU 0.45 / 1.55 under the 3D protocol: only 0.05 .. 0.25 match (5 of 19).
    assert evaluate_hota(gt, pred).overall["DetA"] == approx(100 * 5 / ALPHAS)


def test_dropping_a_class_in_predictions_skips_it():
    person = two_people()
    forklift = rows(*track(1, range(20), 20.0, cls=1))
    gt = np.concatenate([person, forklift])
    result = evaluate_hota(gt, person.copy())
    assert result.overall["HOTA"] == approx(100.0)  # not (100 + 0) / 2
    assert list(result.per_class) == ["Person"]
    assert any("skipped class Forklift (no predictions)" in n for n in result.notes)
    # A predicted class without GT is skipped too.
    result = evaluate_hota(person, gt.copy())
    assert result.overall["HOTA"] == approx(100.0)
    assert any("skipped class Forklift (no GT)" in n for n in result.notes)


def test_classes_average_unweighted_within_a_scene():
    person = two_people()
    forklift = rows(*track(1, range(4), 20.0, cls=1))
    pred_fork = forklift.copy()
    pred_fork[:, 4] += 0.3  # forklift HOTA = 100 * 10 / 19
    result = evaluate_hota(np.concatenate([person, forklift]), np.concatenate([person, pred_fork]))
    # 40 person rows and 4 forklift rows, yet the scene value is the plain mean of the two classes.
    assert result.overall["HOTA"] == approx((100 + 100 * 10 / ALPHAS) / 2)
    assert result.per_class["Forklift"]["HOTA"] == approx(100 * 10 / ALPHAS)


def test_empty_predictions_score_zero():
    result = evaluate_hota(two_people(), np.zeros((0, 11)))
    for name in METRICS:
        assert result.overall[name] == 0.0
    assert result.per_class == {}


def test_scene_without_predictions_counts_zero_at_full_weight():
    scene_a = two_people(range(2))  # 4 GT rows, predicted perfectly
    scene_b = rows(*track(1, range(2), 0.0, scene=22))  # 2 GT rows, no predictions
    result = evaluate_hota(np.concatenate([scene_a, scene_b]), scene_a.copy())
    assert result.scene_weights == {17: 4, 22: 2}
    assert result.per_scene[22]["HOTA"] == 0.0
    assert result.overall["HOTA"] == approx(100 * 4 / 6)
    assert any("scene 22" in n and "scores 0" in n for n in result.notes)


def test_scenes_weighted_by_gt_rows():
    scene_a = two_people(range(3))  # 6 rows, perfect
    scene_b = rows(*track(1, range(2), 0.0, scene=22))  # 2 rows, HOTA 100 * 10 / 19
    pred_b = scene_b.copy()
    pred_b[:, 4] += 0.3
    result = evaluate_hota(np.concatenate([scene_a, scene_b]), np.concatenate([scene_a, pred_b]))
    assert result.overall["HOTA"] == approx((6 * 100 + 2 * 100 * 10 / ALPHAS) / 8)


def test_predictions_on_frames_without_gt_are_ignored():
    gt = rows(*track(1, range(10), 0.0))
    pred = np.concatenate([gt, rows(det(frame=50, x=30.0)), rows(*track(7, [9000, 9001], 0.0))])
    result = evaluate_hota(gt, pred)
    assert result.overall["HOTA"] == approx(100.0)
    assert any("1 predicted rows on frames without GT" in n for n in result.notes)
    assert any("frames >= 9000: 0 GT, 2 predicted" in n for n in result.notes)
    # A false positive on an annotated frame does count.
    pred = np.concatenate([gt, rows(det(oid=2, frame=5, x=30.0))])
    assert evaluate_hota(gt, pred).overall["DetA"] == approx(100 * 10 / 11)


def test_gt_after_frame_9000_is_not_scored_or_weighted():
    gt = rows(*track(1, [8998, 8999, 9000, 9001], 0.0))
    result = evaluate_hota(gt, gt[:2].copy())
    assert result.scene_weights == {17: 2}
    assert result.overall["HOTA"] == approx(100.0)
    with pytest.raises(ValueError, match="no rows in frames"):
        evaluate_hota(gt[2:], gt[2:])


# ------------------------------------------------------------------------------------------------
# Small cases computed by hand
# ------------------------------------------------------------------------------------------------


def test_hand_case_id_switch_between_two_frames():
    # One GT object on frames 0 and 1; predicted exactly (IoU 1) but with id 10, then id 20.
    gt = rows(det(oid=1, frame=0), det(oid=1, frame=1))
    pred = rows(det(oid=10, frame=0), det(oid=20, frame=1))
    # Every alpha: TP = 2, FN = FP = 0 -> DetA = TP / (TP + FN + FP) = 1.
    # Association of each TP: A(c) = |TPA| / (|TPA| + |FNA| + |FPA|) = 1 / (1 + 1 + 0) = 1/2.
    # AssA = mean over TPs = 1/2; HOTA = sqrt(DetA * AssA) = sqrt(1/2).
    # AssRe = |TPA| / (|TPA| + |FNA|) = 1/2; AssPr = |TPA| / (|TPA| + |FPA|) = 1.
    # CLEAR: 1 IDSW over 2 GT -> MOTA = 1 - 1/2. Identity: best pairing GT 1 <-> 10, IDTP 1, IDFN 1, IDFP 1.
    result = evaluate_hota(gt, pred).overall
    expected = {
        "HOTA": math.sqrt(0.5),
        "DetA": 1,
        "AssA": 0.5,
        "LocA": 1,
        "DetRe": 1,
        "DetPr": 1,
        "AssRe": 0.5,
        "AssPr": 1,
        "MOTA": 0.5,
        "IDF1": 2 * 1 / (2 * 1 + 1 + 1),
    }
    for name, value in expected.items():
        assert result[name] == approx(100 * value), name


def test_hand_case_one_miss_one_false_positive():
    # GT a on frames 0 and 1, GT b on frame 1. Prediction x = a exactly on both frames, and y on frame 1
    # far from b (IoU 0).
    gt = rows(det(oid=1, frame=0), det(oid=1, frame=1), det(oid=2, frame=1, x=5.0))
    pred = rows(det(oid=1, frame=0), det(oid=1, frame=1), det(oid=2, frame=1, x=10.0))
    # TP = 2, FN = 1, FP = 1 -> DetA = 2 / 4, DetRe = DetPr = 2 / 3.
    # The two TPs belong to (a, x), which match on all of a's and x's frames -> AssA = 1.
    result = evaluate_hota(gt, pred).overall
    assert result["DetA"] == approx(50.0)
    assert result["DetRe"] == approx(100 * 2 / 3)
    assert result["DetPr"] == approx(100 * 2 / 3)
    assert result["AssA"] == approx(100.0)
    assert result["HOTA"] == approx(100 * math.sqrt(0.5))
    assert result["MOTA"] == approx(100 * (1 - 2 / 3))  # (FN + FP) / GT = 2 / 3


def test_hand_case_partial_overlap_localisation():
    # One object on 2 frames, predicted with IoU exactly 1/3 (half overlap in height): matched for
    # alpha <= 1/3 (0.05 .. 0.30, 6 of 19) with similarity 1/3, unmatched above (LocA 1 there).
    gt = rows(det(frame=0), det(frame=1))
    pred = rows(det(frame=0, z=1.0), det(frame=1, z=1.0))
    result = evaluate_hota(gt, pred).overall
    assert result["DetA"] == approx(100 * 6 / ALPHAS)
    assert result["LocA"] == approx(100 * (6 / 3 + 13) / ALPHAS)


# ------------------------------------------------------------------------------------------------
# API details
# ------------------------------------------------------------------------------------------------


def test_result_to_dict_is_json_and_complete():
    gt = np.concatenate([two_people(range(3)), rows(*track(1, range(3), 20.0, cls=1))])
    result = evaluate_hota(gt, gt.copy())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["protocol"] == "aicity2025"
    assert set(data["overall"]) == set(METRICS)
    assert set(data["per_class"]) == {"Person", "Forklift"}
    assert data["scene_weights"] == {"17": 9}
    assert {(s["class_name"], s["gt_rows"], s["gt_ids"]) for s in data["sequences"]} == {
        ("Person", 6, 2),
        ("Forklift", 3, 1),
    }


def test_rejects_duplicate_detections_and_unknown_protocol():
    gt = two_people(range(2))
    with pytest.raises(TrackFileError, match="appears twice"):
        evaluate_hota(gt, np.concatenate([gt, gt[:1]]))
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_hota(gt, gt, protocol="bev")
    with pytest.raises(TrackFileError, match="shape"):
        evaluate_hota(gt[:, :10], gt)
