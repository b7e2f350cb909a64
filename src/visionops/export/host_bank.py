"""Host side of an exported Sparse4D: the instance bank's state between frames, in NumPy.

The graph (:mod:`visionops.export.sparse4d_graph`) is stateless; this class does what
:class:`~visionops.models.sparse4d.instance_bank.InstanceBank` does around it, with the same arithmetic:

* :meth:`HostInstanceBank.inputs` (before a frame): cache validity per sample (same scene id and
  |dt| <= ``max_time_interval``; a batch-size change or no valid sample resets), constant-velocity projection
  of the cached anchors ``c += v * dt`` (float32, as the eager bank) -> the graph's cache inputs;
* :meth:`HostInstanceBank.cache` (after a frame): confidence = sigmoid(max logit), the T carried slots keep
  ``max(conf, prev_conf * decay)``, ids (slots 0..T-1 inherit, fresh ids from a counter kept across resets
  for un-tracked queries with confidence >= threshold), top-T by a stable descending sort (ties keep the
  lower index, like TAO deploy's host code) cached for the next frame, in query order.

Static cameras only (warehouse scenes): no ego transform between frames.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

CENTER = slice(0, 3)
VEL = slice(8, 11)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic 1 / (1 + exp(-x)) (exp overflows to inf for very negative x, giving exactly 0)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


@dataclass
class CacheInputs:
    """The graph's temporal inputs for one frame (numpy, batch B)."""

    input_cached_feature: np.ndarray  # (B, T, C) float32
    input_cached_anchor: np.ndarray  # (B, T, 11) float32, projected to this frame
    prev_exists: np.ndarray  # (B,) float32, 1 where a cache exists
    interval_mask: np.ndarray  # (B, 1, 1) bool, cache valid for the sample

    def feeds(self) -> dict[str, np.ndarray]:
        return dict(self.__dict__)


class HostInstanceBank:
    """Temporal state of a stream of exported-graph calls.

    Args:
        num_anchor: N queries of the graph. num_temp_instances: T cached. embed_dims: C.
        confidence_decay: per-frame decay of carried confidences (0.8).
        max_time_interval: larger |dt| (s) invalidates a sample's cache.
        id_threshold: minimum class probability for a fresh id (the decoder's score threshold, 0.05).
    """

    def __init__(self, num_anchor: int, num_temp_instances: int, embed_dims: int, confidence_decay: float = 0.8,
                 max_time_interval: float = 2.0, id_threshold: float | None = 0.05) -> None:
        self.num_anchor, self.num_temp_instances, self.embed_dims = num_anchor, num_temp_instances, embed_dims
        self.confidence_decay, self.max_time_interval = confidence_decay, max_time_interval
        self.id_threshold = id_threshold
        self.next_id = 0
        self.reset()

    def reset(self) -> None:
        """Forget the cache; the id counter is kept (ids stay unique over a merged output stream)."""
        self.cached_feature: np.ndarray | None = None
        self.cached_anchor: np.ndarray | None = None
        self.confidence: np.ndarray | None = None
        self.cached_ids: np.ndarray | None = None
        self.timestamp: np.ndarray | None = None
        self.scene_ids: tuple[Hashable, ...] | None = None
        self.mask: np.ndarray | None = None
        self._frame: tuple | None = None

    def reset_ids(self) -> None:
        self.reset()
        self.next_id = 0

    def inputs(self, timestamp: Sequence[float] | np.ndarray, scene_ids: Sequence[Hashable] | None = None
               ) -> CacheInputs:
        """Start a frame of B samples: the graph's cache inputs (zeros + ``prev_exists = 0`` on a cold start).

        Args:
            timestamp: (B,) seconds (float64).
            scene_ids: one hashable per sample; None = never a scene change.
        """
        timestamp = np.asarray(timestamp, dtype=np.float64).reshape(-1)
        b = len(timestamp)
        scenes = None if scene_ids is None else tuple(scene_ids)
        self._frame = (timestamp, scenes)
        if self.cached_anchor is not None and self.cached_anchor.shape[0] != b:
            self.reset()
            self._frame = (timestamp, scenes)
        mask = None
        if self.cached_anchor is not None:
            dt64 = timestamp - self.timestamp
            same = np.ones(b, bool) if scenes is None or self.scene_ids is None else \
                np.array([x == y for x, y in zip(scenes, self.scene_ids, strict=True)])
            mask = same & (np.abs(dt64) <= self.max_time_interval)
            if not mask.any():
                self.reset()
                self._frame = (timestamp, scenes)
        if self.cached_anchor is None:
            t, c = self.num_temp_instances, self.embed_dims
            return CacheInputs(np.zeros((b, t, c), np.float32), np.zeros((b, t, 11), np.float32),
                               np.zeros(b, np.float32), np.zeros((b, 1, 1), bool))
        dt = dt64.astype(np.float32)
        anchor = self.cached_anchor.copy()
        anchor[..., CENTER] = anchor[..., CENTER] + anchor[..., VEL] * dt[:, None, None]
        self.cached_anchor, self.mask = anchor, mask
        return CacheInputs(self.cached_feature, anchor, np.ones(b, np.float32), mask[:, None, None].copy())

    def cache(self, classification: np.ndarray, instance_feature: np.ndarray, anchor: np.ndarray,
              track: bool = True) -> np.ndarray | None:
        """End a frame with the graph's last-layer outputs; returns (B, N) int64 ids (-1 = none) with ``track``.

        Args:
            classification: (B, N, K) logits (``classification2``).
            instance_feature: (B, N, C) (``output_cached_feature``). anchor: (B, N, 11) (``output_cached_anchor``).
        """
        t = self.num_temp_instances
        probability = sigmoid(classification).max(axis=-1)
        confidence = probability
        if self.confidence is not None and self.mask is not None:
            carried = np.maximum(self.confidence * np.float32(self.confidence_decay), probability[:, :t])
            carried = np.where(self.mask[:, None], carried, probability[:, :t])
            confidence = np.concatenate([carried, probability[:, t:]], axis=1)
        index = np.sort(np.argsort(-confidence, axis=1, kind="stable")[:, :t], axis=1)  # query order, as the bank
        ids = self._assign_ids(probability) if track else None
        self.cached_ids = None if ids is None else np.take_along_axis(ids, index, axis=1)
        self.cached_feature = np.take_along_axis(np.asarray(instance_feature, np.float32), index[..., None], axis=1)
        self.cached_anchor = np.take_along_axis(np.asarray(anchor, np.float32), index[..., None], axis=1)
        self.confidence = np.take_along_axis(confidence, index, axis=1)
        self.timestamp, self.scene_ids = self._frame or (None, None)
        self.mask = None
        return ids

    def _assign_ids(self, probability: np.ndarray) -> np.ndarray:
        b, n = probability.shape
        ids = np.full((b, n), -1, dtype=np.int64)
        if self.cached_ids is not None and self.mask is not None:
            ids[:, :self.num_temp_instances] = np.where(self.mask[:, None], self.cached_ids, -1)
        fresh = ids < 0
        if self.id_threshold is not None:
            fresh &= probability >= self.id_threshold
        numbers = np.cumsum(fresh.reshape(-1)).reshape(b, n) - 1 + self.next_id
        self.next_id += int(fresh.sum())
        return np.where(fresh, numbers, ids)
