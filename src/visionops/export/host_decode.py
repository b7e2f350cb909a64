"""Host-side decoding of an exported Sparse4D's outputs (NumPy twin of ``SparseBox3DDecoder``, tracking mode).

Per sample: max sigmoid class probability and label per query; the top ``num_output`` queries by probability;
score = probability x sigmoid(centerness); re-sorted by score; kept where the raw probability >= threshold;
boxes decoded ``[x, y, z, w, l, h, yaw, vx, vy, vz]``. Sorts are stable (ties keep the lower query index).
"""

from __future__ import annotations

import numpy as np

from visionops.export.host_bank import sigmoid


def decode_states(state: np.ndarray) -> np.ndarray:
    """(..., 11) ``[x, y, z, log w, log l, log h, sin, cos, vx, vy, vz]`` -> (..., 10) decoded boxes."""
    state = np.asarray(state, dtype=np.float32)
    yaw = np.arctan2(state[..., 6], state[..., 7])[..., None]
    return np.concatenate([state[..., 0:3], np.exp(state[..., 3:6]), yaw, state[..., 8:11]], axis=-1)


def decode_tracked(classification: np.ndarray, prediction: np.ndarray, quality: np.ndarray | None,
                   instance_ids: np.ndarray, instance_feature: np.ndarray | None = None, num_output: int = 300,
                   score_threshold: float | None = 0.05) -> dict[str, np.ndarray]:
    """Detections of one sample.

    Args:
        classification: (N, K) logits. prediction: (N, 11) box states. quality: (N, 2) logits or None.
        instance_ids: (N,) int64 (-1 = untracked). instance_feature: (N, C) or None.

    Returns:
        ``boxes_3d`` (k, 10), ``scores_3d`` (k,), ``labels_3d`` (k,) int64, ``cls_scores`` (k,),
        ``instance_ids`` (k,), and ``instance_feats`` (k, C) when features are given.
    """
    probability = sigmoid(classification)
    labels = probability.argmax(axis=-1)
    probability = probability.max(axis=-1)
    query = np.argsort(-probability, kind="stable")[:min(num_output, len(probability))]
    cls_scores = probability[query]
    scores = cls_scores
    if quality is not None:
        scores = cls_scores * sigmoid(np.asarray(quality)[query, 0])
        order = np.argsort(-scores, kind="stable")
        query, cls_scores, scores = query[order], cls_scores[order], scores[order]
    keep = np.ones(len(query), bool) if score_threshold is None else cls_scores >= score_threshold
    q = query[keep]
    result = {
        "boxes_3d": decode_states(np.asarray(prediction)[q]),
        "scores_3d": scores[keep],
        "labels_3d": labels[q].astype(np.int64),
        "cls_scores": cls_scores[keep],
        "instance_ids": np.asarray(instance_ids)[q].astype(np.int64),
    }
    if instance_feature is not None:
        result["instance_feats"] = np.asarray(instance_feature, np.float32)[q]
    return result
