"""Instance bank: the learnable anchors and the temporal state that makes Sparse4D a tracker.

Per frame (the model calls these in order):

1. :meth:`InstanceBank.get` - tile the ``num_anchor`` learnable anchors/features to the batch; if a cache of
   the previous frame exists for this batch, project its anchors to now (constant velocity ``c += v * dt``,
   then the optional ego transform ``T_prev->cur`` on centre, yaw vector and velocity, yaw written back as
   [sin, cos] - TAO's correct order, not the official swapped one) and return them as the temporal set.
2. :meth:`InstanceBank.update` (after the single-frame decoder layer) - keep the top ``num_anchor - T``
   current instances by max class logit and put the T cached ones *first*; per sample, only where the cache
   is valid. DN queries appended after ``num_anchor`` are passed through untouched.
3. :meth:`InstanceBank.cache` (after the last layer) - confidence = sigmoid(max logit); slots 0..T-1 (the
   propagated ones) keep ``max(conf, prev_conf * decay)``; the top T are cached (detached). In tracking mode
   ids are assigned first: slots 0..T-1 inherit the ids of the cached instances, un-tracked queries with
   confidence >= threshold get fresh ids from a counter, and the ids of the T cached instances are kept.

Validity: a sample's cache is used only when its scene/sequence id is unchanged and |dt| <= max_time_interval
(warehouse timestamps restart at 0 per scene, so dt alone cannot detect a scene change). The bank resets
when the batch size changes, when no sample's cache is valid, or explicitly; resets keep the id counter so ids
stay unique over a whole output stream (:meth:`reset_ids` restarts it). State is plain Python attributes, not
buffers: it is never saved in a checkpoint and never traced into an exported graph.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from visionops.models.sparse4d.box_state import CENTER, COS_YAW, LOG_SIZE, SIN_YAW, STATE_DIM, VEL


@dataclass
class BankFrame:
    """What :meth:`InstanceBank.get` hands to the decoder."""

    instance_feature: Tensor  # (B, N, C)
    anchor: Tensor  # (B, N, 11)
    temp_feature: Tensor | None  # (B, T, C) cached features, None on a cold start
    temp_anchor: Tensor | None  # (B, T, 11) cached anchors projected to the current time
    time_interval: Tensor  # (B,) seconds, the default where unknown / zero / invalid
    mask: Tensor  # (B,) bool, cache valid for the sample
    # Exported graphs always receive a cache (zeros on a cold start): they run the temporal attention and the
    # cold-start self-attention both and pick per sample by ``mask``, which eager code decides in Python.
    cold_fallback: bool = False


def lattice_anchors(num_anchor: int, half_extent_m: float = 10.0, height_m: float = 0.9) -> Tensor:
    """Placeholder anchors (num_anchor, 11) on a square lattice, 1 m boxes, yaw 0, still.

    Deterministic (no RNG) so a model can be built on the meta device; real runs load the k-means anchors
    (data/anchors/kmeans<N>.npy) with :meth:`InstanceBank.load_anchors`.
    """
    side = math.ceil(math.sqrt(num_anchor))
    ticks = torch.linspace(-half_extent_m, half_extent_m, side)
    xy = torch.stack(torch.meshgrid(ticks, ticks, indexing="ij"), dim=-1).reshape(-1, 2)[:num_anchor]
    anchors = torch.zeros(num_anchor, STATE_DIM)
    anchors[:, :2] = xy
    anchors[:, 2] = height_m
    anchors[:, COS_YAW] = 1.0
    return anchors


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """x (B, N, D), index (B, K) -> (B, K, D)."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))


def project_anchors(anchor: Tensor, dt: Tensor, prev_to_cur: Tensor | None = None) -> Tensor:
    """Move (B, T, 11) anchors by constant velocity over dt (B,) seconds, then by the (B, 4, 4) transform."""
    center = anchor[..., CENTER] + anchor[..., VEL] * dt[:, None, None]
    sin, cos, vel = anchor[..., SIN_YAW:SIN_YAW + 1], anchor[..., COS_YAW:COS_YAW + 1], anchor[..., VEL]
    if prev_to_cur is not None:
        rot, trans = prev_to_cur[:, None, :3, :3].to(anchor.dtype), prev_to_cur[:, None, :3, 3].to(anchor.dtype)
        center = (rot @ center[..., None]).squeeze(-1) + trans
        vel = (rot @ vel[..., None]).squeeze(-1)
        # The heading vector is (cos, sin) in the xy plane; rotate it and store it back as [sin, cos].
        heading = (rot[..., :2, :2] @ torch.cat([cos, sin], dim=-1)[..., None]).squeeze(-1)
        cos, sin = heading[..., :1], heading[..., 1:]
    return torch.cat([center, anchor[..., LOG_SIZE], sin, cos, vel], dim=-1)


def merge_temporal(instance_feature: Tensor, anchor: Tensor, cls_logits: Tensor, cached_feature: Tensor,
                   cached_anchor: Tensor, valid: Tensor, num_anchor: int) -> tuple[Tensor, Tensor]:
    """The bank's update step as a pure function (also traced into the exported graph).

    Per sample where ``valid``: the T cached instances first, then the top ``num_anchor - T`` current ones by
    max class logit; elsewhere the current instances unchanged. Queries after ``num_anchor`` (DN) pass through.

    Args:
        instance_feature: (B, N + M, C); anchor: (B, N + M, 11); cls_logits: (B, N + M, num_classes).
        cached_feature: (B, T, C); cached_anchor: (B, T, 11), already projected to the current time.
        valid: (B,) bool.
        num_anchor: N.
    """
    n, t = num_anchor, cached_feature.shape[1]
    confidence = cls_logits[:, :n].max(dim=-1).values
    # Queries that see nothing have identical logits, so the tie-break must not depend on the backend: lower index
    # first. ONNX TopK guarantees that; torch.topk does not, so eager code sorts stably (no ONNX translation).
    if torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export():
        index = confidence.topk(n - t, dim=1).indices
    else:
        index = torch.sort(confidence, dim=1, descending=True, stable=True).indices[:, :n - t]
    # Keep the chosen queries in query order, not rank order: the decoder is permutation-equivariant, and fresh
    # ids are numbered in slot order, so two near-equal logits that swap rank on another backend (1e-6 apart)
    # would otherwise swap ids.
    index = index.sort(dim=1).values
    feature = torch.cat([cached_feature.to(instance_feature.dtype), _gather(instance_feature[:, :n], index)], dim=1)
    box = torch.cat([cached_anchor.to(anchor.dtype), _gather(anchor[:, :n], index)], dim=1)
    keep = valid[:, None, None]
    feature = torch.where(keep, feature, instance_feature[:, :n])
    box = torch.where(keep, box, anchor[:, :n])
    return torch.cat([feature, instance_feature[:, n:]], dim=1), torch.cat([box, anchor[:, n:]], dim=1)


class InstanceBank(nn.Module):
    """Learnable anchors + temporal cache + instance ids.

    Args:
        num_anchor: N queries (the card: 900).
        embed_dims: C.
        anchor: (N, 11) initial anchors; None = :func:`lattice_anchors`.
        num_temp_instances: T instances carried to the next frame (the card: 600).
        confidence_decay: per-frame decay of carried confidences (TAO 0.8).
        default_time_interval: dt (s) used when unknown (TAO 1/30).
        max_time_interval: larger |dt| (s) invalidates the cache (2 s).
        feat_grad: train the initial instance features (the card: False, zeros).
    """

    def __init__(self, num_anchor: int = 900, embed_dims: int = 256, anchor: Tensor | None = None,
                 num_temp_instances: int = 600, confidence_decay: float = 0.8,
                 default_time_interval: float = 1 / 30, max_time_interval: float = 2.0,
                 feat_grad: bool = False) -> None:
        super().__init__()
        if not 0 <= num_temp_instances < num_anchor:
            raise ValueError(f"num_temp_instances must be in [0, num_anchor), got {num_temp_instances}")
        self.num_anchor, self.num_temp_instances = num_anchor, num_temp_instances
        self.confidence_decay = confidence_decay
        self.default_time_interval, self.max_time_interval = default_time_interval, max_time_interval
        init = lattice_anchors(num_anchor) if anchor is None else torch.as_tensor(anchor, dtype=torch.float32)
        if init.shape != (num_anchor, STATE_DIM):
            raise ValueError(f"anchor must be ({num_anchor}, {STATE_DIM}), got {tuple(init.shape)}")
        self.anchor = nn.Parameter(init.clone())
        self.instance_feature = nn.Parameter(torch.zeros(num_anchor, embed_dims), requires_grad=feat_grad)
        self.next_id = 0
        self.reset()

    @torch.no_grad()
    def load_anchors(self, anchor: Tensor) -> None:
        """Replace the anchor values, e.g. with the k-means priors (N, 11)."""
        self.anchor.copy_(torch.as_tensor(anchor, dtype=self.anchor.dtype))

    def reset(self) -> None:
        """Forget the temporal state (cache, ids of cached instances); the id counter is kept."""
        self.cached_feature: Tensor | None = None
        self.cached_anchor: Tensor | None = None
        self.confidence: Tensor | None = None
        self.cached_ids: Tensor | None = None
        self.timestamp: Tensor | None = None
        self.scene_ids: tuple[Hashable, ...] | None = None
        self.global_transform: Tensor | None = None
        self.mask: Tensor | None = None
        self._frame: tuple | None = None

    def reset_ids(self) -> None:
        """Full reset between independent runs: also restart the id counter at 0."""
        self.reset()
        self.next_id = 0

    def get(self, batch_size: int, timestamp: Tensor, scene_ids: Sequence[Hashable] | Tensor | None = None,
            global_transform: Tensor | None = None) -> BankFrame:
        """Start a frame.

        Args:
            batch_size: B.
            timestamp: (B,) seconds (kept in float64: epoch times in float32 have ~2 min resolution).
            scene_ids: one hashable per sample (scene / sequence id); None = never a scene change.
            global_transform: (B, 4, 4) ego->global of this frame; None = static world frame (TAO).
        """
        device = self.anchor.device
        timestamp = torch.as_tensor(timestamp, dtype=torch.float64, device=device).reshape(batch_size)
        scenes = None if scene_ids is None else tuple(
            scene_ids.tolist() if isinstance(scene_ids, Tensor) else scene_ids)
        self._frame = (timestamp, scenes, global_transform)
        feature = self.instance_feature[None].expand(batch_size, -1, -1)
        anchor = self.anchor[None].expand(batch_size, -1, -1)
        if self.cached_anchor is not None and self.cached_anchor.shape[0] != batch_size:
            self.reset()
            self._frame = (timestamp, scenes, global_transform)
        if self.cached_anchor is not None:
            dt64 = timestamp - self.timestamp
            same = [True] * batch_size if scenes is None or self.scene_ids is None else \
                [a == b for a, b in zip(scenes, self.scene_ids, strict=True)]
            mask = torch.tensor(same, device=device) & (dt64.abs() <= self.max_time_interval)
            if not bool(mask.any()):
                self.reset()
                self._frame = (timestamp, scenes, global_transform)
        default = torch.full((batch_size,), self.default_time_interval, dtype=anchor.dtype, device=device)
        if self.cached_anchor is None:
            return BankFrame(feature, anchor, None, None, default, torch.zeros(batch_size, dtype=torch.bool,
                                                                               device=device))
        dt = dt64.to(anchor.dtype)
        prev_to_cur = None
        if global_transform is not None and self.global_transform is not None:
            prev_to_cur = torch.linalg.inv(global_transform.double()) @ self.global_transform.double()
        self.cached_anchor = project_anchors(self.cached_anchor, dt, prev_to_cur)
        self.mask = mask
        time_interval = torch.where((dt != 0) & mask, dt, default)
        return BankFrame(feature, anchor, self.cached_feature, self.cached_anchor, time_interval, mask)

    def update(self, instance_feature: Tensor, anchor: Tensor, cls_logits: Tensor) -> tuple[Tensor, Tensor]:
        """After the single-frame layer: [T cached, top (N - T) current] where the cache is valid.

        Args:
            instance_feature: (B, N + M, C), M >= 0 DN queries after the N normal ones.
            anchor: (B, N + M, 11).
            cls_logits: (B, N + M, num_classes) of that layer.
        """
        if self.cached_feature is None or self.mask is None:
            return instance_feature, anchor
        return merge_temporal(instance_feature, anchor, cls_logits, self.cached_feature, self.cached_anchor,
                              self.mask, self.num_anchor)

    @torch.no_grad()
    def cache(self, instance_feature: Tensor, anchor: Tensor, cls_logits: Tensor, track: bool = False,
              id_threshold: float | None = None) -> Tensor | None:
        """End a frame: keep the top T instances (and, with ``track``, assign ids).

        Args:
            instance_feature / anchor / cls_logits: (B, N, ·) final-layer outputs of the normal queries.
            track: assign instance ids (inference); training leaves ids alone.
            id_threshold: minimum sigmoid class probability for a fresh id (TAO: the decoder's 0.05).

        Returns:
            (B, N) int64 instance ids (-1 = none) with ``track``, else None.
        """
        n, t = self.num_anchor, self.num_temp_instances
        probability = cls_logits[:, :n].float().max(dim=-1).values.sigmoid()
        confidence = probability
        if self.confidence is not None and self.mask is not None:
            carried = torch.maximum(self.confidence * self.confidence_decay, probability[:, :t])
            carried = torch.where(self.mask[:, None], carried, probability[:, :t])
            confidence = torch.cat([carried, probability[:, t:]], dim=1)
        # Stable sort: ties keep the lower index, like TAO deploy's host-side top-k. The kept slots are then put in
        # query order so a backend's rounding cannot reorder them (see merge_temporal).
        index = torch.sort(confidence, dim=1, descending=True, stable=True).indices[:, :t].sort(dim=1).values
        ids = self._assign_ids(probability, id_threshold) if track else None
        self.cached_ids = None if ids is None else torch.gather(ids, 1, index)
        self.cached_feature = _gather(instance_feature[:, :n].detach(), index)
        self.cached_anchor = _gather(anchor[:, :n].detach(), index)
        self.confidence = torch.gather(confidence, 1, index)
        self.timestamp, self.scene_ids, self.global_transform = self._frame or (None, None, None)
        self.mask = None
        return ids

    def _assign_ids(self, probability: Tensor, threshold: float | None) -> Tensor:
        b, n = probability.shape
        ids = probability.new_full((b, n), -1, dtype=torch.long)
        if self.cached_ids is not None and self.mask is not None:
            inherited = torch.where(self.mask[:, None], self.cached_ids, torch.full_like(self.cached_ids, -1))
            ids = torch.cat([inherited, ids[:, self.num_temp_instances:]], dim=1)
        fresh = ids < 0
        if threshold is not None:
            fresh = fresh & (probability >= threshold)
        numbers = fresh.flatten().cumsum(0).reshape(b, n) - 1 + self.next_id
        self.next_id += int(fresh.sum())
        return torch.where(fresh, numbers, ids)
