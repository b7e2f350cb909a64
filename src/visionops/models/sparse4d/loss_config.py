"""Every weight, focal exponent and DN setting of Sparse4D training, with TAO's values as defaults.

One frozen dataclass so the matcher, the DN generator and the criterion cannot disagree on a constant, and an
experiment changes a value in one place. Sources (specs/sparse4d_architecture.md §2): the official v3 config for
matching, DN and the focal/quality losses; TAO where the two differ (11 regression weights so vz is
supervised, ``max_dn_gt`` 128).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from visionops.models.sparse4d.box_state import STATE_DIM

COST_REG_WEIGHTS: tuple[float, ...] = (2.0, 2.0, 2.0, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Matching box-cost weights: centre and log-size only (yaw and velocity do not decide who matches whom)."""
LOSS_REG_WEIGHTS: tuple[float, ...] = (2.0, 2.0, 2.0) + (1.0,) * 8
"""Box-loss weights. TAO has 11 entries (vz supervised); the official 10 leave vz out (issue #126)."""
DN_NOISE_SCALE: tuple[float, ...] = (2.0, 2.0, 2.0) + (0.5,) * 8
"""Per-dimension DN noise unit ``s``: metres for the centre, log-size / sin-cos / m/s units for the rest."""


def _check_vector(name: str, values: tuple[float, ...]) -> None:
    if len(values) != STATE_DIM:
        raise ValueError(f"{name} needs {STATE_DIM} entries (one per box-state dim), got {len(values)}")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"{name} must be finite and >= 0, got {values}")


@dataclass(frozen=True)
class Sparse4DLossConfig:
    """Loss, matching and denoising constants (defaults = TAO Sparse4D v3).

    Matching (``cost_*``): focal-style class cost and 0.25 x weighted L1 box cost, see :mod:`.matcher`.
    Losses: focal classification, weighted L1 box, centerness BCE, yawness Gaussian focal, dense depth L1 and
    the optional re-ID terms (ID cross-entropy, visibility BCE), see :mod:`.losses`.
    DN: ``num_dn_groups`` groups of a positive and a negative noisy copy of the first ``max_dn_gt`` GT boxes,
    ``num_temp_dn_groups`` of them carried to the next frame, see :mod:`.denoising`.
    """

    # --- classification (sigmoid focal) ---
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cls_weight: float = 2.0
    # --- matching cost ---
    cost_cls_weight: float = 2.0
    cost_box_weight: float = 0.25
    cost_reg_weights: tuple[float, ...] = COST_REG_WEIGHTS
    class_reg_weights: tuple[tuple[int, tuple[float, ...]], ...] = ()
    """Optional per-class replacement of the per-GT weight vector (official ``cls_wise_reg_weights``), used by
    both the matching cost and the box loss, e.g. ``((cone_id, (2, 2, 2, 1, 1, 1, 0, 0, 1, 1, 1)),)``."""
    # --- box regression ---
    box_weight: float = 0.25
    reg_weights: tuple[float, ...] = LOSS_REG_WEIGHTS
    cls_threshold_to_reg: float = 0.05
    """Only matched queries whose max class probability exceeds this get box / quality losses."""
    cls_allow_reverse: tuple[int, ...] = ()
    """Classes whose heading is ambiguous: the GT yaw is flipped when cos-sim(pred, GT) < 0 (official option)."""
    # --- quality ---
    centerness_weight: float = 1.0
    yawness_weight: float = 1.0
    yawness_alpha: float = 2.0
    yawness_gamma: float = 4.0
    yawness_mean: bool = False
    """False: sum / num_pos (official mmdet ``avg_factor``); True: mean over the regressed queries (TAO)."""
    quality_target_grad: bool = False
    """Official code lets the centerness target exp(-dist) carry gradient into the box centre (a BCE target
    is differentiable). False detaches it: the quality head learns to *estimate* the error, not to move the box."""
    # --- dense depth ---
    depth_weight: float = 0.2
    depth_max_m: float = 60.0
    depth_min_valid_m: float = 0.5
    # --- re-ID extras (TAO use_reid_sampling) ---
    id_weight: float = 1.0
    id_label_smoothing: float = 0.1
    visibility_weight: float = 1.0
    # --- denoising ---
    num_dn_groups: int = 5
    num_temp_dn_groups: int = 3
    max_dn_gt: int = 128
    dn_noise_scale: tuple[float, ...] = DN_NOISE_SCALE
    add_negative_dn: bool = True
    # --- layout / bookkeeping ---
    num_single_frame_decoder: int = 1
    """Decoder layers before the bank update: DN targets switch to the temporal ones from this layer on."""
    sync_num_pos: bool = True
    """All-reduce (mean over ranks) the positive counts when torch.distributed is initialised."""

    def __post_init__(self) -> None:
        for name in ("cost_reg_weights", "reg_weights", "dn_noise_scale"):
            _check_vector(name, tuple(getattr(self, name)))
        for cls, weights in self.class_reg_weights:
            _check_vector(f"class_reg_weights[{cls}]", tuple(weights))
        scalars = ("focal_alpha", "focal_gamma", "cls_weight", "cost_cls_weight", "cost_box_weight", "box_weight",
                   "cls_threshold_to_reg", "centerness_weight", "yawness_weight", "yawness_alpha", "yawness_gamma",
                   "depth_weight", "depth_max_m", "depth_min_valid_m", "id_weight", "id_label_smoothing",
                   "visibility_weight")
        for name in scalars:
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.focal_alpha <= 1.0:
            raise ValueError(f"focal_alpha must be in [0, 1], got {self.focal_alpha}")
        if not 0.0 <= self.id_label_smoothing < 1.0:
            raise ValueError(f"id_label_smoothing must be in [0, 1), got {self.id_label_smoothing}")
        if self.num_dn_groups < 0 or self.max_dn_gt < 0:
            raise ValueError(f"num_dn_groups and max_dn_gt must be >= 0, got {self.num_dn_groups}, {self.max_dn_gt}")
        if not 0 <= self.num_temp_dn_groups <= self.num_dn_groups:
            raise ValueError(f"num_temp_dn_groups must be in [0, num_dn_groups={self.num_dn_groups}], "
                             f"got {self.num_temp_dn_groups}")
        if self.num_single_frame_decoder < 0:
            raise ValueError(f"num_single_frame_decoder must be >= 0, got {self.num_single_frame_decoder}")
