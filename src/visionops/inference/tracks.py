"""Tracked predictions -> AI City 2025 Track 1 rows (``scene_id class_id object_id frame_id x y z w l h yaw``).

* class id: the model's label -> its class name -> the 2025 class id (:data:`aicity_format.CLASS_IDS`;
  Person 0 ... AgilityDigit 5). Labels of classes that are not 2025 classes are dropped (with one warning).
* object id: ``instance_id + 1``. The format wants positive ids unique per (scene, class); the instance bank's
  ids are non-negative and unique over the whole stream (one counter for every class), so they are unique per
  class too. A query whose label flips keeps its number in both classes: the evaluator scores every class as
  its own sequence, so that is one track per class, not a collision.
* frame id: the source frame index; box: ``boxes_3d[:, :7]`` in world metres / radians.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from visionops.evaluation.aicity_format import CLASS_IDS, NUM_FIELDS, validate_rows, write_tracks
from visionops.inference.stream import FramePrediction


def class_id_map(class_names: Sequence[str]) -> np.ndarray:
    """(C,) int64: model label -> 2025 class id, -1 for a name that is not a 2025 class."""
    return np.array([CLASS_IDS.get(str(name), -1) for name in class_names], dtype=np.int64)


def predictions_to_track_rows(predictions: Iterable[FramePrediction], scene_id: int,
                              class_names: Sequence[str]) -> np.ndarray:
    """(N, 11) float64 rows in frame order (within a frame: the prediction's score order).

    Args:
        predictions: tracked predictions of one scene (:func:`~visionops.inference.stream.stream_scene`).
        scene_id: the 2025 scene id written in column 0.
        class_names: the model's class names in label order.

    Raises:
        TrackFileError: the rows break the format (e.g. one object twice in a frame; unknown scene id is not
            checked here, so synthetic scenes with their own ids still write).
    """
    mapping = class_id_map(class_names)
    unknown = [str(n) for n, c in zip(class_names, mapping, strict=True) if c < 0]
    dropped = 0
    chunks = []
    for pred in predictions:
        labels = np.asarray(pred.labels_3d, dtype=np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(mapping)):
            raise ValueError(f"frame {pred.frame_id}: labels {sorted(set(labels.tolist()))} outside the "
                             f"{len(mapping)} class names {list(class_names)}")
        ids = np.asarray(pred.instance_ids, dtype=np.int64)
        cls = mapping[labels] if len(labels) else np.zeros(0, dtype=np.int64)
        keep = (cls >= 0) & (ids >= 0)
        dropped += int(np.count_nonzero(cls < 0))
        n = int(keep.sum())
        rows = np.empty((n, NUM_FIELDS), dtype=np.float64)
        rows[:, 0] = scene_id
        rows[:, 1] = cls[keep]
        rows[:, 2] = ids[keep] + 1
        rows[:, 3] = pred.frame_id
        rows[:, 4:] = np.asarray(pred.boxes_3d, dtype=np.float64).reshape(-1, 10)[keep, :7]
        chunks.append(rows)
    if dropped:
        warnings.warn(f"{dropped} detections of classes {unknown} dropped: not AI City 2025 classes", stacklevel=2)
    out = np.concatenate(chunks) if chunks else np.zeros((0, NUM_FIELDS))
    return validate_rows(out, f"scene {scene_id} predictions")


def write_scene_tracks(path: str | os.PathLike, predictions: Iterable[FramePrediction], scene_id: int,
                       class_names: Sequence[str]) -> tuple[Path, np.ndarray]:
    """Write one scene's tracks as an AI City track file, atomically (temp + rename); returns (path, rows)."""
    rows = predictions_to_track_rows(predictions, scene_id, class_names)
    return write_tracks(path, rows), rows
