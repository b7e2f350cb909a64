"""DetectNet_v2 (GridBox) loss as TAO computes it: weighted coverage BCE + cov_norm-weighted bbox L1.

Per class c (targets from :class:`~visionops.models.detectnet_v2.target_encoding.GridboxTargetEncoder`):

- coverage cost ``cov_c = mean_{N,H,W}( w * BCE(sigmoid(logit), cov) )`` with ``w = coverage_foreground_weight``
  (0.05) where ``cov > 0.5`` and ``1 - 0.05 = 0.95`` elsewhere. Yes, the foreground gets the *small* weight:
  that is TAO's rule (``weighted_binary_cross_entropy_cost``); background cells are the ones that must stay
  quiet for the clustering to work.
- bbox cost ``bbox_c = mean_{N,4,H,W}( cov_norm * |pred - target| )``. ``cov_norm`` is zero outside every
  coverage ellipse and carries ``1 / area``, so each object weighs about the same whatever its size.

Combination (TAO ``CostAutoWeightHook.cost_combiner_func``)::

    total = sum_c  wc_c * (w_{c,cov} * cov_c + w_{c,bbox} * bbox_c)

with class weights ``wc`` normalised to sum 1 and objective weights normalised per class (cov 1, bbox 10 ->
1/11, 10/11). Regularisation is separate (:func:`l1_regularization`): TAO adds Keras ``l1(3e-9)`` on every conv
kernel *and* bias to the loss; the training step adds it to ``total``. Do not use optimizer weight decay for it
(that is L2, and decoupled under AdamW).

TAO applies the sigmoid in the model and takes ``-(t log(p + 1e-5) + (1 - t) log(1 - p + 1e-5))``. Here the
head gives *logits* and :func:`torch.nn.functional.binary_cross_entropy_with_logits` is used: the same function
of the logit up to TAO's epsilon (which only matters for saturated outputs, |logit| >~ 11, where TAO's cost is
bounded by -log(1e-5) ~ 11.5 and its gradient vanishes), and numerically stable under AMP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OBJECTIVES: tuple[str, ...] = ("cov", "bbox")
"""Objective order of every (..., 2) weight tensor here."""


def _normalise_objective_weights(objective_weights: Sequence[float] | Sequence[Sequence[float]],
                                 num_classes: int) -> Tensor:
    """(C, 2) per-class objective weights summing to 1 per class, from one (cov, bbox) pair or C pairs."""
    weights = torch.as_tensor(objective_weights, dtype=torch.float64)
    if weights.shape == (2,):
        weights = weights.expand(num_classes, 2)
    if weights.shape != (num_classes, 2):
        raise ValueError(f"objective_weights must be one (cov, bbox) pair or {num_classes} pairs, "
                         f"got shape {tuple(weights.shape)}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"objective_weights must be finite and >= 0, got {weights.tolist()}")
    sums = weights.sum(dim=1, keepdim=True)
    # TAO sets a class's objective weights to 0 when they sum to 0 (the class then contributes nothing).
    return torch.where(sums > 0, weights / sums.clamp_min(1e-300), torch.zeros_like(weights)).float()


class DetectNetLoss(nn.Module):
    """TAO DetectNet_v2 cost for one minibatch.

    Args:
        num_classes: C.
        class_weights: C non-negative weights (TAO ``class_weight``), normalised to sum 1; ``None`` = equal.
        objective_weights: initial (cov, bbox) weights (TAO ``initial_weight``), one pair for all classes or one
            pair per class; normalised per class. Kept in the ``objective_weights`` buffer (C, 2), which
            :class:`AutoWeighting` updates and checkpoints carry.
        coverage_foreground_weight: BCE weight where the coverage target > 0.5; the rest gets ``1 - it``.
        l1_weight: TAO's L1 regulariser weight, stored for :meth:`regularization` (not part of ``forward``).
    """

    def __init__(self, num_classes: int, class_weights: Sequence[float] | None = None,
                 objective_weights: Sequence[float] | Sequence[Sequence[float]] = (1.0, 10.0),
                 coverage_foreground_weight: float = 0.05, l1_weight: float = 3e-9) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        if class_weights is None:
            class_weights = [1.0] * self.num_classes
        cw = torch.as_tensor(class_weights, dtype=torch.float64).reshape(-1)
        if cw.numel() != self.num_classes:
            raise ValueError(f"got {cw.numel()} class_weights for num_classes={self.num_classes}")
        if not torch.isfinite(cw).all() or (cw < 0).any() or cw.sum() <= 0:
            raise ValueError(f"class_weights must be finite, >= 0 and not all 0, got {cw.tolist()}")
        if not 0.0 <= coverage_foreground_weight <= 1.0:
            raise ValueError(f"coverage_foreground_weight must be in [0, 1], got {coverage_foreground_weight}")
        if not (math.isfinite(l1_weight) and l1_weight >= 0):
            raise ValueError(f"l1_weight must be a finite number >= 0, got {l1_weight}")
        self.coverage_foreground_weight = float(coverage_foreground_weight)
        self.l1_weight = float(l1_weight)
        # Constants of the config: not saved (a checkpoint must not override the experiment's config) ...
        self.register_buffer("class_weights", (cw / cw.sum()).float(), persistent=False)
        # ... but objective weights change under auto-weighting, so resuming must restore them.
        self.register_buffer("objective_weights", _normalise_objective_weights(objective_weights, self.num_classes))

    def forward(self, cov_logits: Tensor, bbox_pred: Tensor, targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Loss of a minibatch.

        Args:
            cov_logits: (N, C, H, W) coverage head output *before* the sigmoid.
            bbox_pred: (N, 4C, H, W) bbox head output, channel ``4c + k``, k in (L, T, R, B).
            targets: ``cov`` (N, C, H, W), ``cov_norm`` (N, C, H, W), ``bbox`` (N, 4C, H, W), as from
                :meth:`GridboxTargetEncoder.encode_batch`.

        Returns:
            ``total`` (scalar) = ``cov + bbox``; ``cov`` / ``bbox`` (scalars): class- and objective-weighted
            sums; ``per_class_cov`` / ``per_class_bbox`` (C,): the *unweighted* per-class mean costs (what
            TAO logs and what :class:`AutoWeighting` accumulates). Computed in float32 even under autocast.
        """
        n, c, h, w = cov_logits.shape
        if c != self.num_classes:
            raise ValueError(f"cov_logits has {c} channels, expected num_classes={self.num_classes}")
        if bbox_pred.shape != (n, 4 * c, h, w):
            raise ValueError(f"bbox_pred must have shape {(n, 4 * c, h, w)}, got {tuple(bbox_pred.shape)}")
        for key, shape in (("cov", (n, c, h, w)), ("cov_norm", (n, c, h, w)), ("bbox", (n, 4 * c, h, w))):
            if key not in targets:
                raise KeyError(f"targets lacks {key!r} (needs 'cov', 'cov_norm', 'bbox')")
            if tuple(targets[key].shape) != shape:
                raise ValueError(f"targets[{key!r}] must have shape {shape}, got {tuple(targets[key].shape)}")

        # float32 throughout: fp16 BCE/L1 means over ~10^5 cells lose the small per-cell terms.
        cov_target = targets["cov"].float()
        fg = self.coverage_foreground_weight
        weight = torch.where(cov_target > 0.5, fg, 1.0 - fg)
        bce = F.binary_cross_entropy_with_logits(cov_logits.float(), cov_target, weight=weight, reduction="none")
        per_class_cov = bce.mean(dim=(0, 2, 3))  # (C,): mean over (N, 1, H, W) per class

        l1 = (bbox_pred.float() - targets["bbox"].float()).abs().view(n, c, 4, h, w)
        per_class_bbox = (l1 * targets["cov_norm"].float().unsqueeze(2)).mean(dim=(0, 2, 3, 4))  # over (N, 4, H, W)

        cov = (self.class_weights * self.objective_weights[:, 0] * per_class_cov).sum()
        bbox = (self.class_weights * self.objective_weights[:, 1] * per_class_bbox).sum()
        return {"total": cov + bbox, "cov": cov, "bbox": bbox,
                "per_class_cov": per_class_cov, "per_class_bbox": per_class_bbox}

    def regularization(self, model: nn.Module) -> Tensor:
        """``l1_regularization(model, self.l1_weight)``: add it to ``total`` in the training step."""
        return l1_regularization(model, self.l1_weight)


def l1_regularization(model: nn.Module, weight: float) -> Tensor:
    """``weight * sum |p|`` over the weight *and* bias of every ``nn.Conv2d`` in ``model`` (heads included).

    Matches TAO's Keras ``l1(weight)`` kernel + bias regularisers: a sum, not a mean; BatchNorm affine
    parameters are not regularised. Returns a scalar on the parameters' device; exactly 0 (and no work) when
    ``weight == 0``, e.g. in the retrain phase after pruning.
    """
    params = [p for m in model.modules() if isinstance(m, nn.Conv2d) for p in (m.weight, m.bias) if p is not None]
    if weight == 0 or not params:
        device = params[0].device if params else None
        return torch.zeros((), device=device)
    return weight * torch.stack([p.abs().sum(dtype=torch.float32) for p in params]).sum()


def check_finite(losses: Mapping[str, Tensor | float], step: int) -> None:
    """Raise ``FloatingPointError`` naming the first non-finite loss term (and class index) and the step.

    Call it on the dict from :class:`DetectNetLoss` (plus any extra terms) before ``backward``. It syncs with
    the device (one ``.item()`` per term).
    """
    for name, value in losses.items():
        tensor = torch.as_tensor(value).detach()
        finite = torch.isfinite(tensor)
        if bool(finite.all()):
            continue
        if tensor.ndim == 0:
            raise FloatingPointError(f"loss term {name!r} is {tensor.item()} at step {step}")
        bad = torch.nonzero(~finite).flatten().tolist()
        raise FloatingPointError(f"loss term {name!r} is non-finite at step {step} (index {bad}: "
                                 f"{tensor.flatten()[~finite.flatten()].tolist()})")


class AutoWeighting:
    """TAO's objective auto-weighting (``enable_autoweighting``), applied at epoch ends. Disabled by default.

    During an epoch, :meth:`accumulate` adds each minibatch's per-class mean costs (``per_class_cov`` /
    ``per_class_bbox`` from :class:`DetectNetLoss`). At the epoch end, :meth:`epoch_end` sets, per class,
    ``w_o = weight_target_o / cost_sum_o`` (0 where the sum is 0), normalised to sum 1 over the objectives and
    clamped to [min_weight, max_weight]; a class whose raw weights sum to 0 keeps its old weights. The effect
    is a cov:bbox contribution ratio near ``weight_target``. Sums of minibatch *means* are used as TAO does:
    dividing by the number of steps cancels in the normalisation.

    Args:
        num_classes: C.
        weight_targets: TAO ``weight_target`` per objective (cov, bbox): one pair or C pairs.
        min_weight, max_weight: TAO ``min_objective_weight`` / ``max_objective_weight``.
        enabled: when False, :meth:`accumulate` and :meth:`epoch_end` do nothing.
    """

    def __init__(self, num_classes: int, weight_targets: Sequence[float] | Sequence[Sequence[float]] = (1.0, 10.0),
                 min_weight: float = 1e-4, max_weight: float = 0.9999, enabled: bool = False) -> None:
        targets = torch.as_tensor(weight_targets, dtype=torch.float64)
        if targets.shape == (2,):
            targets = targets.expand(int(num_classes), 2)
        if targets.shape != (int(num_classes), 2) or not torch.isfinite(targets).all() or (targets < 0).any():
            raise ValueError(f"weight_targets must be one or {num_classes} non-negative (cov, bbox) pairs, "
                             f"got {targets.tolist()}")
        if not 0.0 <= min_weight <= max_weight <= 1.0:
            raise ValueError(f"need 0 <= min_weight <= max_weight <= 1, got {min_weight}, {max_weight}")
        self.num_classes = int(num_classes)
        self.weight_targets = targets.clone()
        self.min_weight = float(min_weight)
        self.max_weight = float(max_weight)
        self.enabled = bool(enabled)
        self.cost_sums = torch.zeros(self.num_classes, 2, dtype=torch.float64)

    def accumulate(self, losses: Mapping[str, Tensor]) -> None:
        """Add one minibatch's ``per_class_cov`` and ``per_class_bbox`` (C,) to the epoch sums."""
        if not self.enabled:
            return
        costs = torch.stack([losses["per_class_cov"].detach(), losses["per_class_bbox"].detach()], dim=1)
        self.cost_sums += costs.to("cpu", torch.float64)

    def epoch_end(self, loss: DetectNetLoss) -> Tensor:
        """Update ``loss.objective_weights`` in place from this epoch's sums, reset the sums, return the weights.

        In multi-process training, all-reduce ``cost_sums`` before calling this so every rank computes the same
        weights (a sum across ranks is fine: it cancels in the normalisation, as in TAO).
        """
        if not self.enabled:
            return loss.objective_weights
        sums = self.cost_sums
        raw = torch.where(sums == 0, torch.zeros_like(sums), self.weight_targets / sums.where(sums != 0, 1.0))
        total = raw.sum(dim=1, keepdim=True)
        new = (raw / total.where(total != 0, 1.0)).clamp(self.min_weight, self.max_weight)
        old = loss.objective_weights.detach().to("cpu", torch.float64)
        new = torch.where(total == 0, old, new)
        loss.objective_weights.copy_(new.to(loss.objective_weights))
        self.cost_sums.zero_()
        return loss.objective_weights

    def state_dict(self) -> dict[str, object]:
        """Epoch sums and settings, for resuming mid-epoch."""
        return {"cost_sums": self.cost_sums.clone(), "enabled": self.enabled}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        self.cost_sums = torch.as_tensor(state["cost_sums"], dtype=torch.float64).clone()
        self.enabled = bool(state["enabled"])
