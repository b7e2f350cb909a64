"""Predictions -> AI City 2025 track rows and files."""

from __future__ import annotations

import numpy as np
import pytest

from visionops.evaluation.aicity_format import load_tracks, parse_tracks
from visionops.inference.stream import FramePrediction
from visionops.inference.tracks import predictions_to_track_rows, write_scene_tracks


def prediction(frame: int, ids, labels, seed: int = 0) -> FramePrediction:
    n = len(ids)
    rng = np.random.default_rng(seed + frame)
    boxes = rng.normal(size=(n, 10)) * 3
    boxes[:, 3:6] = np.abs(boxes[:, 3:6]) + 0.1
    return FramePrediction(boxes_3d=boxes, scores_3d=np.linspace(0.9, 0.5, n, dtype=np.float32),
                           labels_3d=np.asarray(labels, dtype=np.int64), cls_scores=np.full(n, 0.9, np.float32),
                           instance_ids=np.asarray(ids, dtype=np.int64), instance_feats=np.zeros((n, 4), np.float32),
                           frame_id=frame, scene_name="Warehouse_017+bev-sensor-all", timestamp=frame / 30)


def test_rows_map_classes_ids_frames_and_boxes():
    preds = [prediction(0, [0, 3], [0, 1]), prediction(5, [3, 7], [0, 1])]  # id 3 flips class: one track per class
    rows = predictions_to_track_rows(preds, 17, ["Forklift", "Person"])  # model order != 2025 order
    assert rows.shape == (4, 11)
    np.testing.assert_array_equal(rows[:, 0], 17)
    np.testing.assert_array_equal(rows[:, 1], [1, 0, 1, 0])  # Forklift = 1, Person = 0 in the 2025 table
    np.testing.assert_array_equal(rows[:, 2], [1, 4, 4, 8])  # positive ids: instance id + 1
    np.testing.assert_array_equal(rows[:, 3], [0, 0, 5, 5])
    np.testing.assert_array_equal(rows[:2, 4:], preds[0].boxes_3d[:, :7])


def test_track_file_round_trips_through_the_strict_reader(tmp_path):
    preds = [prediction(f, [0, 1, 2], [0, 0, 2], seed=3) for f in range(3)]
    path, rows = write_scene_tracks(tmp_path / "out" / "track1.txt", preds, 17, ["Person", "Forklift", "NovaCarter"])
    loaded, notes = load_tracks(path)
    assert notes == [] and loaded.shape == (9, 11)
    np.testing.assert_array_equal(loaded, rows)  # shortest exact float repr: lossless
    assert set(loaded[:, 1].tolist()) == {0.0, 2.0}
    again, _ = parse_tracks(path.read_text())
    np.testing.assert_array_equal(again, rows)
    assert not list(path.parent.glob(".tmp*"))  # written atomically, no temporaries left


def test_unknown_classes_are_dropped_with_a_warning_and_bad_labels_fail(tmp_path):
    with pytest.warns(UserWarning, match=r"1 detections of classes \['pallet'\] dropped"):
        rows = predictions_to_track_rows([prediction(0, [0, 1], [0, 1])], 17, ["Person", "pallet"])
    assert rows.shape == (1, 11) and rows[0, 1] == 0
    with pytest.raises(ValueError, match="labels .* outside the 1 class names"):
        predictions_to_track_rows([prediction(0, [0, 1], [0, 1])], 17, ["Person"])


def test_empty_predictions_write_an_empty_file(tmp_path):
    path, rows = write_scene_tracks(tmp_path / "empty.txt", [prediction(0, [], [])], 17, ["Person"])
    assert rows.shape == (0, 11) and path.read_text() == ""
