"""Sparse4D loss functions (specs/sparse4d_architecture.md §2.3), each a plain function of tensors.

Every per-query loss here returns an **un-normalised sum** (float32, whatever the input dtype, so bf16/fp16 sums
over hundreds of queries keep their small terms); the criterion divides by ``num_pos`` (see
:func:`reduce_count`) and applies the weights of :class:`~.loss_config.Sparse4DLossConfig`:

- classification: sigmoid focal (alpha .25, gamma 2), labels outside [0, C) = background (all-zero one-hot),
  so DN negatives (-3) and lost temporal DN copies (-1) are pushed to background (official semantics);
- box: weighted L1 on the 11-d state, weights = reg weights x per-GT mask;
- centerness: BCE-with-logits vs exp(-||xyz_pred - xyz_gt||_2 / 1 m);
- yawness: Gaussian focal (alpha 2, gamma 4) on sigmoid(logit) vs 1[cos-sim(sincos_pred, sincos_gt) > 0].

Dense depth, ID and visibility losses are already normalised (a mean or the depth rule), as in TAO.
Everything is built from log-sigmoids of logits, hence autocast-safe (no ``binary_cross_entropy``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from visionops.models.sparse4d.box_state import YAW


def sigmoid_focal_loss(logits: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Sum over queries and classes of the sigmoid focal loss.

    Args:
        logits: (Q, C) class logits.
        labels: (Q,) int64; a value in [0, C) is that class, anything else (C, -1, -3, ...) background.

    Returns:
        scalar float32 ``sum  a_t (1 - p_t)^g BCE(logit, t)`` with one-hot ``t``, ``p_t = p t + (1-p)(1-t)``,
        ``a_t = a t + (1 - a)(1 - t)``.
    """
    x = logits.float()
    num_classes = x.shape[-1]
    fg = (labels >= 0) & (labels < num_classes)
    target = torch.zeros_like(x)
    target[fg] = F.one_hot(labels[fg].long(), num_classes).to(x.dtype)
    p = x.sigmoid()
    p_t = p * target + (1.0 - p) * (1.0 - target)
    alpha_t = alpha * target + (1.0 - alpha) * (1.0 - target)
    bce = F.binary_cross_entropy_with_logits(x, target, reduction="none")
    return (alpha_t * (1.0 - p_t).pow(gamma) * bce).sum()


def weighted_l1_loss(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """``sum |pred - target| * weights`` over (K, D); target entries with weight 0 (NaN GT dims) count 0."""
    target = torch.where(weights > 0, target.float(), torch.zeros_like(target, dtype=torch.float32))  # NaN * 0 = NaN
    return ((pred.float() - target).abs() * weights.float()).sum()


def centerness_target(pred_xyz: Tensor, gt_xyz: Tensor) -> Tensor:
    """(K,) ``exp(-||pred - gt||_2)`` with positions in metres: 1 at the GT centre, 0.37 one metre away."""
    return torch.exp(-torch.linalg.vector_norm(pred_xyz.float() - gt_xyz.float(), dim=-1))


def centerness_loss(logits: Tensor, pred_xyz: Tensor, gt_xyz: Tensor, target_grad: bool = False) -> Tensor:
    """Sum over K of BCE-with-logits(centerness logit (K,), :func:`centerness_target` of (K, 3) centres).

    ``target_grad=True`` keeps the official behaviour of back-propagating through the target into the centre.
    """
    target = centerness_target(pred_xyz, gt_xyz)
    if not target_grad:
        target = target.detach()
    return F.binary_cross_entropy_with_logits(logits.float(), target, reduction="sum")


def yawness_target(pred_sincos: Tensor, gt_sincos: Tensor) -> Tensor:
    """(K,) float 1.0 where the predicted (sin, cos) points within 90 degrees of the GT's, else 0.0."""
    return (F.cosine_similarity(pred_sincos.float(), gt_sincos.float(), dim=-1) > 0).float()


def gaussian_focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, gamma: float = 4.0) -> Tensor:
    """Sum of the CornerNet Gaussian focal loss of ``sigmoid(logits)`` vs ``target`` in [0, 1] (same shape).

    ``pos = -log(p) (1-p)^a [t == 1]``, ``neg = -log(1-p) p^a (1-t)^g``; logs as log-sigmoids (mmdet adds 1e-12
    inside the log instead, which only differs for saturated logits).
    """
    x = logits.float()
    t = target.float()
    p = x.sigmoid()
    pos = F.softplus(-x) * (1.0 - p).pow(alpha) * (t == 1).float()
    neg = F.softplus(x) * p.pow(alpha) * (1.0 - t).pow(gamma)
    return (pos + neg).sum()


def yawness_loss(logits: Tensor, pred_sincos: Tensor, gt_sincos: Tensor, alpha: float = 2.0,
                 gamma: float = 4.0) -> Tensor:
    """Sum over K of :func:`gaussian_focal_loss` (K,) logits vs :func:`yawness_target` of (K, 2) sin/cos."""
    return gaussian_focal_loss(logits, yawness_target(pred_sincos, gt_sincos), alpha, gamma)


def flip_ambiguous_yaw(pred: Tensor, target: Tensor, labels: Tensor, classes: Sequence[int]) -> Tensor:
    """Target (K, 11) with sin/cos negated where the label is in ``classes`` and cos-sim(pred, target) < 0."""
    if not classes:
        return target
    reverse = F.cosine_similarity(pred[..., YAW].float(), target[..., YAW].float(), dim=-1) < 0
    reverse = reverse & torch.isin(labels, torch.as_tensor(list(classes), device=labels.device))
    yaw = torch.where(reverse[:, None], -target[..., YAW], target[..., YAW])
    return torch.cat([target[..., : YAW.start], yaw, target[..., YAW.stop:]], dim=-1)


def dense_depth_loss(preds: Sequence[Tensor], gts: Sequence[Tensor], max_depth: float = 60.0,
                     min_valid: float = 0.5, weight: float = 0.2) -> Tensor:
    """Dense depth L1 of the auxiliary head (official ``DenseDepthNet.loss``).

    Args:
        preds: per level (B*Ncam, 1, H_l, W_l) depth in metres.
        gts: per level GT depth in metres, (B*Ncam, H_l, W_l) or (B*Ncam, 1, H_l, W_l); pixels below
            ``min_valid`` (TAO marks < 0.5 m invalid) or non-finite are ignored.

    Returns:
        scalar ``weight * sum_l sum_valid |max(pred, 0) - min(gt, max_depth)| / max(1, #valid_l * #levels)``.
        Non-finite *predictions* are kept (official code drops them): a NaN must reach the criterion's check.
        Departure from the official ``|clip(pred, 0, max_depth) - gt|``: there a prediction past ``max_depth``
        has zero gradient and stays there for good (seen in our overfit runs: the term froze at a constant);
        clipping the target instead gives the same value in range and always pulls the prediction back.
    """
    if len(preds) != len(gts):
        raise ValueError(f"dense_depth_loss: {len(preds)} prediction levels but {len(gts)} GT levels")
    total = preds[0].new_zeros((), dtype=torch.float32) if preds else torch.zeros(())
    for pred, gt in zip(preds, gts, strict=True):
        if gt.numel() != pred.numel():
            raise ValueError(f"depth GT {tuple(gt.shape)} does not match prediction {tuple(pred.shape)}")
        p = pred.float().reshape(-1)
        g = gt.to(p.device, torch.float32).reshape(-1)
        valid = torch.isfinite(g) & (g >= min_valid)
        error = (p.clamp(min=0.0) - torch.where(valid, g.clamp(max=max_depth), torch.zeros_like(g))).abs()
        count = (valid.sum() * len(preds)).clamp_min(1).float()
        # where(), not boolean indexing: no host sync, and a NaN prediction on a valid pixel stays NaN
        total = total + torch.where(valid, error, torch.zeros_like(error)).sum() / count
    return total * weight


def id_loss(logits: Tensor, ids: Tensor, label_smoothing: float = 0.1) -> Tensor:
    """Mean cross-entropy (label smoothing) of (K, num_ids) logits vs (K,) asset ids; ids outside [0, num_ids)
    are skipped; 0 (still attached to ``logits``) when none is valid."""
    valid = (ids >= 0) & (ids < logits.shape[-1])
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits[valid].float(), ids[valid].long(), label_smoothing=label_smoothing)


def visibility_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean BCE of per-camera visibility probabilities (K, Ncam) vs targets in [0, 1] (non-finite or out-of-range
    targets skipped). Logs are clamped at -100 as ``nn.BCELoss`` does, but computed by hand: autocast refuses
    ``binary_cross_entropy``."""
    p = pred.float()
    t = target.to(p.device, torch.float32)
    valid = torch.isfinite(t) & (t >= 0) & (t <= 1)
    t = torch.where(valid, t, torch.zeros_like(t))
    bce = -(t * p.log().clamp_min(-100.0) + (1.0 - t) * (1.0 - p).log().clamp_min(-100.0))
    return torch.where(valid, bce, torch.zeros_like(bce)).sum() / valid.sum().clamp_min(1)


def reduce_count(counts: Tensor, sync: bool = True) -> Tensor:
    """Normalisers from local counts (any shape): mean over ranks when torch.distributed is initialised, >= 1.

    Call it once per step with *all* counts stacked, so every rank joins the same single all-reduce.
    """
    counts = counts.detach().float()
    if sync and dist.is_available() and dist.is_initialized():
        counts = counts.clone()
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        counts = counts / dist.get_world_size()
    return counts.clamp_min(1.0)

