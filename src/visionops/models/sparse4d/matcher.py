"""Hungarian target assignment of Sparse4D (official ``SparseBox3DTarget.sample``, TAO identical).

Per decoder layer and sample, the cost of giving GT ``j`` to query ``i`` is::

    cost[i, j] = cls_cost + box_cost
    cls_cost   = 2.0 * ( a (1-p)^g (-log p) - (1-a) p^g (-log(1-p)) ),  p = sigmoid(logit[i, label_j]), a=.25, g=2
    box_cost   = 0.25 * sum_d |pred[i, d] - gt[j, d]| * w_d * m[j, d],   w = [2, 2, 2, .5, .5, .5, 0, 0, 0, 0, 0]

on the 11-d encoded state (:mod:`.box_state`), ``m`` the per-GT weight (0 where the GT dim is NaN, or a class
override). Yaw and velocity have weight 0: they do not decide the assignment. scipy's
``linear_sum_assignment`` solves it on the CPU; non-finite costs become 1e8 so a broken prediction cannot stop it.
Queries left over get the background label ``C`` (done by the criterion).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from visionops.models.sparse4d.box_state import STATE_DIM
from visionops.models.sparse4d.loss_config import Sparse4DLossConfig

INVALID_COST = 1e8
"""Replaces NaN / inf costs (official: NaN and -inf -> 1e8; +inf too here, scipy rejects it)."""


def focal_class_cost(logits: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0,
                     weight: float = 2.0) -> Tensor:
    """Focal-style classification cost.

    Args:
        logits: (N, C) class logits of the queries.
        labels: (M,) int64 GT classes in [0, C).

    Returns:
        (N, M) float32 ``weight * (a (1-p)^g (-log p) - (1-a) p^g (-log(1-p)))`` with ``p`` the probability of
        the GT's class. ``-log p`` is ``softplus(-logit)`` (exact and finite for any logit, where the official
        ``-log(p + 1e-12)`` saturates at ~27.6; the two agree to 1e-6 for |logit| < 20).
    """
    x = logits.float()[:, labels]
    p = x.sigmoid()
    pos = alpha * (1.0 - p).pow(gamma) * F.softplus(-x)
    neg = (1.0 - alpha) * p.pow(gamma) * F.softplus(x)
    return (pos - neg) * weight


def box_cost(pred: Tensor, gt: Tensor, gt_weights: Tensor, reg_weights: Tensor, weight: float = 0.25) -> Tensor:
    """Weighted L1 box cost.

    Args:
        pred: (N, 11) predicted encoded states.
        gt: (M, 11) GT encoded states (NaN allowed where ``gt_weights`` is 0).
        gt_weights: (M, 11) per-GT dimension weights (0 = ignore that dim of that GT).
        reg_weights: (11,) per-dimension weights.

    Returns:
        (N, M) float32 ``weight * sum_d |pred - gt| * gt_weights * reg_weights``. Dimensions with a zero
        ``reg_weights`` entry are dropped before the difference, so a NaN yaw or velocity in a prediction
        cannot poison the cost; a NaN GT dim with weight 0 counts 0 (official code lets it turn the whole GT
        column into NaN -> 1e8).
    """
    dims = torch.nonzero(reg_weights > 0).flatten()
    w = gt_weights.float()[:, dims] * reg_weights.float()[dims]  # (M, D)
    g = torch.where(w > 0, gt.float()[:, dims], torch.zeros_like(w))  # NaN GT dims -> 0; their weight is 0 anyway
    diff = (pred.float()[:, None, dims] - g[None]).abs()  # (N, M, D)
    return (diff * w[None]).sum(dim=-1) * weight


def gt_reg_weights(gt_boxes: Tensor, gt_labels: Tensor,
                   class_reg_weights: Sequence[tuple[int, Sequence[float]]] = ()) -> Tensor:
    """(M, 11) per-GT weights: 1 where the GT value is finite, 0 where NaN/inf, times any class override."""
    weights = torch.isfinite(gt_boxes).to(torch.float32)
    for cls, override in class_reg_weights:
        row = torch.as_tensor(override, dtype=torch.float32, device=gt_boxes.device)
        weights = torch.where((gt_labels == cls)[:, None], weights * row, weights)
    return weights


def _check_gt(gt_boxes: Tensor, gt_labels: Tensor, num_classes: int) -> None:
    if gt_boxes.ndim != 2 or gt_boxes.shape[-1] != STATE_DIM:
        raise ValueError(f"gt_boxes must be (M, {STATE_DIM}) encoded states, got {tuple(gt_boxes.shape)}")
    if gt_labels.shape != gt_boxes.shape[:1]:
        raise ValueError(f"gt_labels must be ({gt_boxes.shape[0]},), got {tuple(gt_labels.shape)}")
    if gt_labels.numel() and (int(gt_labels.min()) < 0 or int(gt_labels.max()) >= num_classes):
        raise ValueError(f"gt_labels must lie in [0, {num_classes}), got {gt_labels.unique().tolist()}")


class HungarianMatcher:
    """One-to-one query <-> GT assignment with the Sparse4D cost (see the module docstring).

    Args:
        config: constants (``focal_alpha``, ``focal_gamma``, ``cost_cls_weight``, ``cost_box_weight``,
            ``cost_reg_weights``, ``class_reg_weights``); defaults = TAO.
    """

    def __init__(self, config: Sparse4DLossConfig | None = None) -> None:
        self.config = config or Sparse4DLossConfig()

    @torch.no_grad()
    def cost(self, cls_logits: Tensor, box_pred: Tensor, gt_labels: Tensor, gt_boxes: Tensor) -> Tensor:
        """(N, M) float32 cost of one sample, on the predictions' device; raw (non-finite values kept).

        Args:
            cls_logits: (N, C) logits. box_pred: (N, 11) encoded states.
            gt_labels: (M,) int64 in [0, C). gt_boxes: (M, 11) encoded GT states.
        """
        cfg = self.config
        _check_gt(gt_boxes, gt_labels, cls_logits.shape[-1])
        labels = gt_labels.to(cls_logits.device)
        boxes = gt_boxes.to(box_pred.device)
        reg = torch.as_tensor(cfg.cost_reg_weights, dtype=torch.float32, device=box_pred.device)
        cls = focal_class_cost(cls_logits, labels, cfg.focal_alpha, cfg.focal_gamma, cfg.cost_cls_weight)
        box = box_cost(box_pred, boxes, gt_reg_weights(boxes, labels, cfg.class_reg_weights), reg,
                       cfg.cost_box_weight)
        return cls + box

    @torch.no_grad()
    def match_one(self, cls_logits: Tensor, box_pred: Tensor, gt_labels: Tensor,
                  gt_boxes: Tensor) -> tuple[Tensor, Tensor]:
        """``(pred_idx, gt_idx)`` int64 (K,) each, K = min(N, M), on the predictions' device, pred_idx ascending.

        Shapes as :meth:`cost`. M = 0 gives two empty tensors.
        """
        device = cls_logits.device
        if gt_labels.numel() == 0:
            _check_gt(gt_boxes.reshape(0, STATE_DIM), gt_labels.reshape(0), cls_logits.shape[-1])
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return empty, empty.clone()
        cost = self.cost(cls_logits, box_pred, gt_labels, gt_boxes).cpu().numpy().astype(np.float64)
        cost = np.where(np.isfinite(cost), cost, INVALID_COST)
        rows, cols = linear_sum_assignment(cost)
        return (torch.as_tensor(rows, dtype=torch.int64, device=device),
                torch.as_tensor(cols, dtype=torch.int64, device=device))

    @torch.no_grad()
    def __call__(self, cls_logits: Tensor, box_pred: Tensor, gt_labels: Sequence[Tensor],
                 gt_boxes: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Match a batch.

        Args:
            cls_logits: (B, N, C) logits. box_pred: (B, N, 11) encoded states (extra trailing dims ignored).
            gt_labels: B tensors (M_b,) int64. gt_boxes: B tensors (M_b, 11).

        Returns:
            B pairs ``(pred_idx, gt_idx)``, see :meth:`match_one`.
        """
        if cls_logits.ndim != 3 or box_pred.shape[:2] != cls_logits.shape[:2]:
            raise ValueError(f"cls_logits (B, N, C) and box_pred (B, N, 11) disagree: {tuple(cls_logits.shape)} "
                             f"vs {tuple(box_pred.shape)}")
        if len(gt_labels) != cls_logits.shape[0] or len(gt_boxes) != cls_logits.shape[0]:
            raise ValueError(f"need one GT entry per sample: batch {cls_logits.shape[0]}, got {len(gt_labels)} "
                             f"label and {len(gt_boxes)} box tensors")
        box_pred = box_pred[..., :STATE_DIM]
        return [self.match_one(cls_logits[b], box_pred[b], gt_labels[b], gt_boxes[b])
                for b in range(cls_logits.shape[0])]
