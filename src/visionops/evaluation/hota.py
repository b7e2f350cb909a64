"""HOTA of AI City 2025 Track 1 track files (official protocol), on trackeval's metric classes.

Protocol ``aicity2025`` (specs/mtmc_data_and_eval.md section 2.2):

1. Keep frames in [0, 9000); drop prediction rows on frames where the scene has no GT row.
2. One sequence per (scene, class), ids remapped to 0..N-1 within it.
3. Similarity = 3D IoU of the yaw-rotated boxes (:mod:`visionops.evaluation.iou3d`).
4. trackeval's HOTA over alpha = 0.05..0.95 (19 thresholds); reported values are means over alpha.
5. Per scene: unweighted mean over the classes with both GT and prediction rows (a class missing on either
   side is skipped, not scored 0).
6. Final: mean of the per-scene values weighted by the scene's GT rows; a scene with GT but no class
   scored (no predictions) counts 0 at its full weight.

Protocol ``location`` is the 2024 variant: similarity = max(0, 1 - d / 2 m) on the box centres.

CLEAR (MOTA) and Identity (IDF1) are trackeval's too, at similarity threshold 0.5, on the same
sequences; they are aggregated the same way as HOTA.

All reported metric values are percentages (x100, as on the leaderboard). MOTA can be negative.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from visionops.evaluation.aicity_format import (
    BOX_COLUMNS,
    CLASS_NAMES,
    COL_CLASS,
    COL_FRAME,
    COL_ID,
    COL_SCENE,
    NUM_FRAMES,
    validate_rows,
)
from visionops.evaluation.iou3d import centre_similarity_pairs, iou3d_pairs

PROTOCOLS: tuple[str, ...] = ("aicity2025", "location")
HOTA_METRICS: tuple[str, ...] = ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")
METRICS: tuple[str, ...] = (*HOTA_METRICS, "MOTA", "IDF1")
"""Reported metrics, in table order. All percentages."""

LOCATION_ZERO_DISTANCE_M = 2.0
_PAIR_CHUNK = 1 << 18  # box pairs gathered at once (bounds memory on dense frames)


@dataclass
class SequenceResult:
    """Metrics of one (scene, class) sequence.

    Attributes:
        scene_id, class_id: the sequence.
        metrics: :data:`METRICS` -> percent.
        gt_rows, pred_rows: detections scored (after frame filtering).
        gt_ids, pred_ids: distinct track ids.
        id_switches: CLEAR's IDSW.
    """

    scene_id: int
    class_id: int
    metrics: dict[str, float]
    gt_rows: int
    pred_rows: int
    gt_ids: int
    pred_ids: int
    id_switches: int

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.class_id]


@dataclass
class HotaResult:
    """Result of :func:`evaluate_hota`. Metric dicts map :data:`METRICS` names to percentages.

    Attributes:
        protocol: ``aicity2025`` or ``location``.
        overall: the leaderboard numbers (scene means weighted by GT rows).
        per_scene: scene id -> mean over the scene's scored classes (all 0 for a scene with nothing scored).
        per_class: class name -> that class over the scenes where it was scored, weighted by its GT rows.
        sequences: every scored (scene, class).
        scene_weights: scene id -> GT rows in frames [0, 9000).
        notes: what was filtered or skipped, in words.
    """

    protocol: str
    overall: dict[str, float]
    per_scene: dict[int, dict[str, float]]
    per_class: dict[str, dict[str, float]]
    sequences: list[SequenceResult]
    scene_weights: dict[int, int]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (scene ids as strings, as JSON keys must be)."""
        return {
            "protocol": self.protocol,
            "units": "percent",
            "overall": dict(self.overall),
            "per_class": {name: dict(m) for name, m in self.per_class.items()},
            "per_scene": {str(s): dict(m) for s, m in self.per_scene.items()},
            "scene_weights": {str(s): w for s, w in self.scene_weights.items()},
            "sequences": [
                {
                    **{k: v for k, v in asdict(seq).items() if k != "metrics"},
                    "class_name": seq.class_name,
                    "metrics": dict(seq.metrics),
                }
                for seq in self.sequences
            ],
            "notes": list(self.notes),
        }


@lru_cache(maxsize=1)
def _metric_objects() -> tuple[Any, Any, Any]:
    """trackeval's HOTA, CLEAR and Identity, built once. Imported lazily: trackeval is slow to import."""
    # trackeval prints an "Error importing BURST ... pycocotools" line on import when pycocotools is
    # missing; it is harmless for the metric classes, so keep it off the user's terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        from trackeval.metrics import CLEAR, HOTA, Identity

        return (
            HOTA(),
            CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
            Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False}),
        )


def _similarity_fn(protocol: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if protocol == "aicity2025":
        return iou3d_pairs
    if protocol == "location":
        return lambda a, b: centre_similarity_pairs(a, b, LOCATION_ZERO_DISTANCE_M)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def sequence_data(
    gt: np.ndarray, pred: np.ndarray, similarity: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> dict[str, Any]:
    """trackeval's per-sequence input for one (scene, class).

    Args:
        gt, pred: (n, 11) and (m, 11) rows of one sequence, frames already filtered.
        similarity: (K, 7), (K, 7) boxes -> (K,) similarity in [0, 1] of aligned pairs.

    Returns:
        The dict that trackeval's ``eval_sequence`` takes: per timestep (frames where either side has a
        row; empty frames change no metric) ``gt_ids``/``tracker_ids`` remapped to 0..N-1 and
        ``similarity_scores`` of shape (len(gt_ids[t]), len(tracker_ids[t])), plus the counts.
    """
    gt = gt[np.argsort(gt[:, COL_FRAME], kind="stable")]
    pred = pred[np.argsort(pred[:, COL_FRAME], kind="stable")]
    gt_unique, gt_ids = np.unique(gt[:, COL_ID], return_inverse=True)
    pred_unique, pred_ids = np.unique(pred[:, COL_ID], return_inverse=True)
    gt_frames, pred_frames = gt[:, COL_FRAME], pred[:, COL_FRAME]
    frames = np.union1d(gt_frames, pred_frames)

    # Row ranges of each timestep in the frame-sorted arrays.
    g_lo, g_hi = np.searchsorted(gt_frames, frames, "left"), np.searchsorted(gt_frames, frames, "right")
    p_lo, p_hi = np.searchsorted(pred_frames, frames, "left"), np.searchsorted(pred_frames, frames, "right")
    n_gt, n_pred = g_hi - g_lo, p_hi - p_lo

    # All (gt, pred) pairs of all timesteps, flattened timestep by timestep in row-major order, so that
    # one vectorised similarity call serves the whole sequence.
    sizes = n_gt * n_pred
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    step = np.repeat(np.arange(len(frames)), sizes)
    local = np.arange(total) - offsets[step]
    cols = np.maximum(n_pred[step], 1)
    gi = g_lo[step] + local // cols
    pj = p_lo[step] + local % cols
    gt_boxes, pred_boxes = gt[:, BOX_COLUMNS], pred[:, BOX_COLUMNS]
    sim = np.empty(total)
    for lo in range(0, total, _PAIR_CHUNK):
        hi = min(lo + _PAIR_CHUNK, total)
        sim[lo:hi] = similarity(gt_boxes[gi[lo:hi]], pred_boxes[pj[lo:hi]])

    bounds = zip(g_lo.tolist(), g_hi.tolist(), p_lo.tolist(), p_hi.tolist(), offsets[:-1].tolist(), strict=True)
    gt_ids_t, pred_ids_t, sims_t = [], [], []
    for a, b, c, d, o in bounds:
        gt_ids_t.append(gt_ids[a:b])
        pred_ids_t.append(pred_ids[c:d])
        sims_t.append(sim[o : o + (b - a) * (d - c)].reshape(b - a, d - c))
    return {
        "gt_ids": gt_ids_t,
        "tracker_ids": pred_ids_t,
        "similarity_scores": sims_t,
        "num_gt_dets": len(gt),
        "num_tracker_dets": len(pred),
        "num_gt_ids": len(gt_unique),
        "num_tracker_ids": len(pred_unique),
        "num_timesteps": len(frames),
    }


def evaluate_sequence(data: dict[str, Any]) -> tuple[dict[str, float], int]:
    """Run trackeval's HOTA, CLEAR and Identity on one sequence.

    Returns:
        (:data:`METRICS` -> percent, HOTA values as means over the 19 alphas; CLEAR's IDSW count).
    """
    hota, clear, identity = _metric_objects()
    res_hota = hota.eval_sequence(data)
    res_clear = clear.eval_sequence(data)
    res_id = identity.eval_sequence(data)
    metrics = {name: 100.0 * float(np.mean(res_hota[name])) for name in HOTA_METRICS}
    metrics["MOTA"] = 100.0 * float(res_clear["MOTA"])
    metrics["IDF1"] = 100.0 * float(res_id["IDF1"])
    return metrics, int(res_clear["IDSW"])


def _weighted_mean(items: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    total = sum(w for _, w in items)
    if total <= 0:
        return {name: 0.0 for name in METRICS}
    return {name: sum(m[name] * w for m, w in items) / total for name in METRICS}


def evaluate_hota(
    gt_rows: np.ndarray, pred_rows: np.ndarray, protocol: str = "aicity2025", num_frames: int = NUM_FRAMES
) -> HotaResult:
    """Score predictions against GT with the AI City protocol.

    Args:
        gt_rows: (N, 11) GT rows ``scene class id frame x y z w l h yaw``.
        pred_rows: (M, 11) prediction rows, same layout (M may be 0).
        protocol: ``aicity2025`` (3D IoU) or ``location`` (centre distance, 2024).
        num_frames: frames [0, num_frames) are scored (9000 in the official evaluator).

    Returns:
        :class:`HotaResult` with percentages.

    Raises:
        ValueError: unknown protocol, malformed rows (:class:`TrackFileError`), or no GT row to score.
    """
    similarity = _similarity_fn(protocol)
    gt = validate_rows(gt_rows, "ground truth")
    pred = validate_rows(pred_rows, "predictions")
    notes: list[str] = []

    gt_late = gt[:, COL_FRAME] >= num_frames
    pred_late = pred[:, COL_FRAME] >= num_frames
    if gt_late.any() or pred_late.any():
        notes.append(
            f"ignored rows on frames >= {num_frames}: {int(gt_late.sum())} GT, {int(pred_late.sum())} predicted"
        )
    gt, pred = gt[~gt_late], pred[~pred_late]
    if len(gt) == 0:
        raise ValueError(f"the ground truth has no rows in frames [0, {num_frames}); nothing to score")

    # Predictions only count on frames the GT annotates (per scene, over all classes: an annotated frame
    # without a forklift says there is no forklift).
    gt_keys = np.unique(gt[:, COL_SCENE] * num_frames + gt[:, COL_FRAME])
    on_gt_frame = np.isin(pred[:, COL_SCENE] * num_frames + pred[:, COL_FRAME], gt_keys)
    gt_scenes = np.unique(gt[:, COL_SCENE]).astype(int).tolist()
    extra_scenes = sorted(set(np.unique(pred[:, COL_SCENE]).astype(int).tolist()) - set(gt_scenes))
    if extra_scenes:
        notes.append(f"ignored predictions for scenes without GT: {extra_scenes}")
    dropped = int((~on_gt_frame & np.isin(pred[:, COL_SCENE], gt_scenes)).sum())
    if dropped:
        notes.append(f"ignored {dropped} predicted rows on frames without GT")
    pred = pred[on_gt_frame]

    sequences: list[SequenceResult] = []
    per_scene: dict[int, dict[str, float]] = {}
    scene_weights: dict[int, int] = {}
    for scene in gt_scenes:
        gt_s = gt[gt[:, COL_SCENE] == scene]
        pred_s = pred[pred[:, COL_SCENE] == scene]
        scene_weights[scene] = len(gt_s)
        gt_classes = set(np.unique(gt_s[:, COL_CLASS]).astype(int).tolist())
        pred_classes = set(np.unique(pred_s[:, COL_CLASS]).astype(int).tolist())
        for cls in sorted(gt_classes ^ pred_classes):
            side = "predictions" if cls in gt_classes else "GT"
            notes.append(f"scene {scene}: skipped class {CLASS_NAMES[cls]} (no {side})")
        scored: list[dict[str, float]] = []
        for cls in sorted(gt_classes & pred_classes):
            g = gt_s[gt_s[:, COL_CLASS] == cls]
            p = pred_s[pred_s[:, COL_CLASS] == cls]
            data = sequence_data(g, p, similarity)
            metrics, idsw = evaluate_sequence(data)
            sequences.append(
                SequenceResult(scene, cls, metrics, len(g), len(p), data["num_gt_ids"], data["num_tracker_ids"], idsw)
            )
            scored.append(metrics)
        if scored:
            per_scene[scene] = {name: float(np.mean([m[name] for m in scored])) for name in METRICS}
        else:
            notes.append(f"scene {scene}: no class has both GT and predictions; the scene scores 0")
            per_scene[scene] = {name: 0.0 for name in METRICS}

    overall = _weighted_mean([(per_scene[s], scene_weights[s]) for s in gt_scenes])
    per_class: dict[str, dict[str, float]] = {}
    for cls in sorted({seq.class_id for seq in sequences}):
        items = [(seq.metrics, seq.gt_rows) for seq in sequences if seq.class_id == cls]
        per_class[CLASS_NAMES[cls]] = _weighted_mean(items)
    return HotaResult(protocol, overall, per_scene, per_class, sequences, scene_weights, notes)
