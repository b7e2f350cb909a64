"""Denoising (DN) queries of Sparse4D v3 (official/TAO ``SparseBox3DTarget.get_dn_anchors/update_dn/cache_dn``).

Each training frame, the first ``max_dn_gt`` GT boxes of every sample (TAO 128) are copied into
``num_dn_groups`` groups (5). Per group, every GT gives a *positive* copy ``gt + U(-1, 1) s`` and a *negative*
copy ``gt + (+-1) U(1, 2) s`` (random sign per dim), ``s = [2, 2, 2 m, 0.5 for the other dims]``. A Hungarian
match on the box cost (:func:`.matcher.box_cost`, centre and log-size only) inside the group gives every GT
exactly one copy: that copy gets the GT's class and box; every other copy is a *negative* (label -3, trained as
background, no box loss). Batch padding copies (samples with fewer GTs) are marked invalid and get no loss.

Layout of the Q = G * S DN queries (appended after the N normal queries): group-major, S = 2 * K per group
(K = most GTs of a sample in the batch, capped): ``[positive copies of GT 0..K-1, negative copies 0..K-1]``.
Self-attention: normal <-> DN blocked and groups isolated (:func:`self_attention_mask`, True = blocked).

Temporal DN: after a frame, ``num_temp_dn_groups`` (3) random groups are cached (features, refined anchors,
labels, validity, instance ids). Next frame, after the bank update, they replace the first 3 groups of samples
whose bank is valid; their targets are re-derived by instance id against the *current* GT (any of it, not only
the first ``max_dn_gt``): found -> the GT's class and box, lost -> label -1 (background); negatives stay -3.
All random draws come from one CPU ``torch.Generator``: the same seed gives the same queries on any device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from visionops.models.sparse4d.box_state import STATE_DIM
from visionops.models.sparse4d.loss_config import Sparse4DLossConfig
from visionops.models.sparse4d.matcher import INVALID_COST, box_cost, gt_reg_weights

NEGATIVE_LABEL = -3
"""A noisy copy no GT was assigned to: classified as background, no box loss."""
LOST_LABEL = -1
"""A cached temporal copy whose instance id is not in the current GT (also the label of padding copies)."""


@dataclass(frozen=True)
class DNTargets:
    """Per-query DN targets, Q = num_groups * group_size queries per sample.

    Attributes:
        labels: (B, Q) int64: class in [0, C) for assigned copies, -3 negative, -1 lost / padding.
        boxes: (B, Q, 11) encoded GT state of assigned copies (NaN GT dims replaced by 0), zeros elsewhere.
        box_weights: (B, Q, 11) per-GT dim weights (0 for NaN GT dims and unassigned copies).
        valid: (B, Q) bool, False for batch padding: such queries get no loss at all.
        instance_ids: (B, Q) int64 GT instance id of the copy's GT, -1 for negatives and padding.
        gt_index: (B, Q) int64 index into the sample's (current) GT list, -1 where no GT is assigned.
        num_groups: G.
    """

    labels: Tensor
    boxes: Tensor
    box_weights: Tensor
    valid: Tensor
    instance_ids: Tensor
    gt_index: Tensor
    num_groups: int

    @property
    def group_size(self) -> int:
        return self.labels.shape[1] // self.num_groups

    def grouped(self) -> list[Tensor]:
        """The tensors reshaped to (B, G, S, ...), in field order (labels .. gt_index)."""
        b, g, s = self.labels.shape[0], self.num_groups, self.group_size
        return [t.reshape(b, g, s, *t.shape[2:]) for t in
                (self.labels, self.boxes, self.box_weights, self.valid, self.instance_ids, self.gt_index)]


@dataclass(frozen=True)
class DNQueries:
    """``anchors`` (B, Q, 11) noisy GT states (the DN anchors; their features start at zero), ``targets``, and
    ``attn_mask`` (Q, Q) bool, True = blocked (groups isolated; combine with :func:`self_attention_mask`)."""

    anchors: Tensor
    targets: DNTargets
    attn_mask: Tensor

    @property
    def num_queries(self) -> int:
        return self.anchors.shape[1]


@dataclass(frozen=True)
class DNCache:
    """Cached (detached) DN groups: features (B, Gt, S, D), anchors (B, Gt, S, 11), the rest (B, Gt, S)."""

    features: Tensor
    anchors: Tensor
    labels: Tensor
    valid: Tensor
    instance_ids: Tensor


def dn_attention_mask(num_groups: int, group_size: int, device: torch.device | str | None = None) -> Tensor:
    """(G*S, G*S) bool, True (blocked) between queries of different groups."""
    group = torch.arange(num_groups * group_size, device=device) // max(group_size, 1)
    return group[:, None] != group[None, :]


def self_attention_mask(num_normal: int, dn_mask: Tensor | None) -> Tensor | None:
    """(N+Q, N+Q) bool self-attention mask: normal <-> DN blocked, DN block = ``dn_mask``; None without DN."""
    if dn_mask is None or dn_mask.shape[0] == 0:
        return None
    n, q = num_normal, dn_mask.shape[0]
    mask = torch.ones(n + q, n + q, dtype=torch.bool, device=dn_mask.device)
    mask[:n, :n] = False
    mask[n:, n:] = dn_mask
    return mask


class DenoisingGenerator:
    """Builds DN queries from GT and carries the temporal DN groups across frames.

    Per training frame (the head owns one generator and one CPU ``torch.Generator`` ``rng``)::

        dn = gen.generate(gt_boxes, gt_labels, gt_ids, generator=rng)   # None: no GT / no groups
        # append dn.anchors (+ zero features) after the N normal queries;
        # attn_mask = self_attention_mask(N, dn.attn_mask); run layer 0; bank update; then:
        gen.project_cache(lambda a: project_like_bank(a, dt))             # optional motion compensation
        f_dn, a_dn, temporal = gen.temporal_update(f_dn, a_dn, dn.targets, gt_boxes, gt_labels, gt_ids, bank_ok)
        # layers 1.. ; criterion: dn.targets for layer 0, ``temporal`` for the later layers; at the end:
        gen.cache(final_f_dn, final_a_dn, temporal, generator=rng)
    """

    def __init__(self, config: Sparse4DLossConfig | None = None) -> None:
        self.config = config or Sparse4DLossConfig()
        self.cached: DNCache | None = None

    def reset(self) -> None:
        """Forget the temporal DN cache (scene change, batch-size change, new epoch)."""
        self.cached = None

    def _gt_tables(self, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor], gt_ids: Sequence[Tensor] | None,
                   limit: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor, list[int]]:
        """Padded CPU tables (B, K, 11) boxes (NaN -> 0), weights, (B, K) labels (pad -1), ids (pad -1), counts."""
        counts = [len(b) if limit is None else min(len(b), limit) for b in gt_boxes]
        bsz, k = len(gt_boxes), max(counts, default=0)
        boxes, weights = torch.zeros(bsz, k, STATE_DIM), torch.zeros(bsz, k, STATE_DIM)
        labels, ids = (torch.full((bsz, k), -1, dtype=torch.int64) for _ in range(2))  # -1: padding / no id
        for b, m in enumerate(counts):
            box = gt_boxes[b][:m].detach().float().cpu()
            lab = gt_labels[b][:m].detach().long().cpu()
            boxes[b, :m] = torch.where(torch.isfinite(box), box, torch.zeros_like(box))
            weights[b, :m] = gt_reg_weights(box, lab, self.config.class_reg_weights)
            labels[b, :m] = lab
            if gt_ids is not None:
                ids[b, :m] = gt_ids[b][:m].detach().long().cpu()
        return boxes, weights, labels, ids, counts

    @torch.no_grad()
    def generate(self, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor], gt_ids: Sequence[Tensor] | None = None,
                 generator: torch.Generator | None = None) -> DNQueries | None:
        """DN queries for a batch.

        Args:
            gt_boxes: B tensors (M_b, 11) encoded GT states. gt_labels: B tensors (M_b,) int64 classes.
            gt_ids: B tensors (M_b,) int64 instance ids (needed for temporal DN), or None.
            generator: CPU ``torch.Generator`` for every random draw (None = torch's default one).

        Returns:
            :class:`DNQueries` on the GT's device, or None when ``num_dn_groups`` is 0 or no sample has a GT.
        """
        cfg = self.config
        limit = cfg.max_dn_gt if cfg.max_dn_gt > 0 else None
        boxes, weights, labels, ids, counts = self._gt_tables(gt_boxes, gt_labels, gt_ids, limit)
        g, (bsz, k) = cfg.num_dn_groups, labels.shape
        if g == 0 or k == 0:
            return None
        scale = torch.as_tensor(cfg.dn_noise_scale, dtype=torch.float32)
        shape = (g, bsz, k, STATE_DIM)
        copies = [boxes + (torch.rand(shape, generator=generator) * 2 - 1) * scale]
        if cfg.add_negative_dn:
            magnitude = torch.rand(shape, generator=generator) + 1
            sign = torch.where(torch.rand(shape, generator=generator) > 0.5, 1.0, -1.0)
            copies.append(boxes + magnitude * sign * scale)
        anchors = torch.cat(copies, dim=2)  # (G, B, S, 11)
        s = anchors.shape[2]
        out_labels = torch.full((g, bsz, s), LOST_LABEL, dtype=torch.int64)
        out_boxes = torch.zeros(g, bsz, s, STATE_DIM)
        out_weights = torch.zeros(g, bsz, s, STATE_DIM)
        out_ids, out_index = (torch.full((g, bsz, s), -1, dtype=torch.int64) for _ in range(2))
        reg = torch.as_tensor(cfg.cost_reg_weights, dtype=torch.float32)
        for b, m in enumerate(counts):
            if m == 0:
                continue
            # Only copies of real GTs compete; padding copies (noise around 0) must never win a GT.
            rows = torch.cat([torch.arange(m) + c * k for c in range(len(copies))])
            out_labels[:, b, rows] = NEGATIVE_LABEL
            for gi in range(g):
                cost = box_cost(anchors[gi, b, rows], boxes[b, :m], weights[b, :m], reg, cfg.cost_box_weight)
                cost = np.where(np.isfinite(cost.numpy()), cost.numpy(), INVALID_COST)
                r, c = (torch.as_tensor(x, dtype=torch.int64) for x in linear_sum_assignment(cost))
                q = rows[r]
                out_labels[gi, b, q] = labels[b, c]
                out_boxes[gi, b, q] = boxes[b, c]
                out_weights[gi, b, q] = weights[b, c]
                out_ids[gi, b, q] = ids[b, c]
                out_index[gi, b, q] = c
        valid = out_labels != LOST_LABEL  # every copy of a real GT is assigned or negative; the rest is padding
        device = gt_boxes[0].device

        def flat(t: Tensor) -> Tensor:  # (G, B, S, ...) -> (B, G*S, ...), group-major
            return t.transpose(0, 1).reshape(bsz, g * s, *t.shape[3:]).to(device)

        targets = DNTargets(flat(out_labels), flat(out_boxes), flat(out_weights), flat(valid), flat(out_ids),
                            flat(out_index), g)
        return DNQueries(flat(anchors), targets, dn_attention_mask(g, s, device))

    @torch.no_grad()
    def cache(self, features: Tensor, anchors: Tensor, targets: DNTargets,
              generator: torch.Generator | None = None) -> None:
        """Keep ``num_temp_dn_groups`` random groups (same choice for the whole batch) for the next frame.

        Args:
            features: (B, Q, D) final DN instance features. anchors: (B, Q, 11) final refined DN anchors.
            targets: the targets these queries were trained with (temporal ones if :meth:`temporal_update` ran).
        """
        tg = self.config.num_temp_dn_groups
        if tg == 0:
            self.cached = None
            return
        g, s = targets.num_groups, targets.group_size
        keep = torch.nonzero(torch.randperm(g, generator=generator) < tg).flatten().to(features.device)
        bsz = features.shape[0]
        labels, _, _, valid, ids, _ = targets.grouped()
        self.cached = DNCache(features.detach().reshape(bsz, g, s, -1)[:, keep],
                              anchors.detach().reshape(bsz, g, s, -1)[:, keep],
                              labels[:, keep], valid[:, keep], ids[:, keep])

    def project_cache(self, fn: Callable[[Tensor], Tensor]) -> None:
        """Replace the cached anchors by ``fn(anchors)`` with anchors (B, Gt*S, 11), e.g. the bank's projection."""
        if self.cached is not None:
            a = self.cached.anchors
            self.cached = replace(self.cached, anchors=fn(a.flatten(1, 2)).reshape(a.shape))

    def _rederive(self, cache: DNCache, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor],
                  gt_ids: Sequence[Tensor], device: torch.device) -> list[Tensor]:
        """Targets (B, Gt, S0, ...) of the cached copies from the current GT, matched by instance id."""
        boxes, weights, labels, ids, _ = self._gt_tables(gt_boxes, gt_labels, gt_ids, None)
        if ids.shape[1] == 0:  # no GT anywhere: one dummy id -1 column, which no cached id >= 0 can hit
            boxes = weights = torch.zeros(len(gt_boxes), 1, STATE_DIM)
            labels = ids = torch.full((len(gt_boxes), 1), -1, dtype=torch.int64)
        cached_ids = cache.instance_ids.cpu()
        hit = (cached_ids[..., None] == ids[:, None, None, :]) & (cached_ids >= 0)[..., None]  # (B, Gt, S0, M)
        found = hit.any(-1) & cache.valid.cpu()
        j = hit.float().argmax(-1)  # first GT with that id (ids are unique per frame)
        bidx = torch.arange(len(gt_boxes))[:, None, None]
        was_tracked = (cached_ids >= 0) | (cache.labels.cpu() >= 0)
        lost = torch.where(was_tracked, LOST_LABEL, cache.labels.cpu())  # a negative copy stays negative
        new_labels = torch.where(found, labels[bidx, j], lost)
        new_boxes = torch.where(found[..., None], boxes[bidx, j], 0.0)
        new_weights = torch.where(found[..., None], weights[bidx, j], 0.0)
        new_index = torch.where(found, j, -1)
        return [t.to(device) for t in (new_labels, new_boxes, new_weights, cache.valid, cached_ids, new_index)]

    def temporal_update(self, features: Tensor, anchors: Tensor, targets: DNTargets, gt_boxes: Sequence[Tensor],
                        gt_labels: Sequence[Tensor], gt_ids: Sequence[Tensor] | None,
                        temporal_valid: Tensor | None) -> tuple[Tensor, Tensor, DNTargets]:
        """Swap the cached groups in for the first ``num_temp_dn_groups`` groups (call after the bank update).

        Not under ``no_grad``: the groups that stay keep their autograd history from layer 0.

        Args:
            features: (B, Q, D) current DN features. anchors: (B, Q, 11) current DN anchors.
            targets: this frame's targets from :meth:`generate`.
            gt_boxes, gt_labels, gt_ids: this frame's GT per sample (ids required; None -> nothing to do).
            temporal_valid: (B,) bool, the bank's per-sample "previous frame usable" mask (None = no cache).

        Returns:
            ``(features, anchors, targets)`` with the same Q (cached groups padded with invalid copies or
            truncated to this frame's group size); unchanged when there is nothing to swap in.
        """
        cache = self.cached
        bsz = features.shape[0]
        if cache is None or temporal_valid is None or gt_ids is None:
            return features, anchors, targets
        if cache.features.shape[0] != bsz:
            self.reset()
            return features, anchors, targets
        g, s = targets.num_groups, targets.group_size
        tg, s0 = cache.labels.shape[1:]
        temp = [cache.features.to(features), cache.anchors.to(anchors)]
        temp += self._rederive(cache, gt_boxes, gt_labels, gt_ids, features.device)
        pads = (0.0, 0.0, LOST_LABEL, 0.0, 0.0, False, -1, -1)  # features, anchors, labels .. gt_index
        current = [features.reshape(bsz, g, s, -1), anchors.reshape(bsz, g, s, -1), *targets.grouped()]
        keep = temporal_valid.to(device=features.device, dtype=torch.bool)
        merged = []
        for t, cur, pad in zip(temp, current, pads, strict=True):
            if s0 < s:
                filler = torch.full((bsz, tg, s - s0, *t.shape[3:]), pad, dtype=t.dtype, device=t.device)
                t = torch.cat([t, filler], dim=2)
            t = torch.where(keep.view(bsz, *([1] * (t.ndim - 1))), t[:, :, :s], cur[:, :tg])
            merged.append(torch.cat([t, cur[:, tg:]], dim=1).flatten(1, 2))
        return merged[0], merged[1], DNTargets(*merged[2:], num_groups=g)
