"""Sparse4D architecture hyper-parameters (:class:`Sparse4DConfig`) and named presets.

* ``full_r101`` - the TAO model card's configuration (trainable_v2.2 ResNet-101 spec): 960x540 input, 256-d
  embeddings, 900 anchors / 600 temporal, 6 decoder layers (1 single-frame), 8 groups x 13 points x 4 levels,
  FPN 256, dense depth on 3 levels, 6 warehouse classes. The one deliberate difference from TAO's default
  code path is the camera embedding (geometry MLP instead of 20 camera slots, see design.md).
* ``r50`` - the same with ResNet-50 (the card's v2.2 ResNet-50 variant).
* ``default`` - a small configuration that trains on a 2-core CPU in minutes with the same code paths:
  ResNet-18, 320x176 input, 128-d, 256 anchors / 128 temporal, 3 layers (1 single + 2 temporal), 4 groups,
  no GridMask and no dropout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

FIX_SCALE_045: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),
    (0.45, 0.0, 0.0),
    (-0.45, 0.0, 0.0),
    (0.0, 0.45, 0.0),
    (0.0, -0.45, 0.0),
    (0.0, 0.0, 0.45),
    (0.0, 0.0, -0.45),
)
"""The card's ``fix_scale``: centre and +-0.45 along each box axis (fractions of the box size)."""

CARD_CLASSES = ("Person", "Forklift", "NovaCarter", "Transporter", "FourierGR1T2", "AgilityDigit")
"""The six classes the card's model was trained and evaluated on (the v2.2 changelog adds pallet_truck)."""

_BACKBONE_CHANNELS = {"resnet18": (64, 128, 256, 512), "resnet34": (64, 128, 256, 512),
                      "resnet50": (256, 512, 1024, 2048), "resnet101": (256, 512, 1024, 2048)}


@dataclass(frozen=True)
class Sparse4DConfig:
    """Every architecture hyper-parameter of the network (units in the comments)."""

    # --- image encoder
    backbone: str = "resnet101"
    frozen_stages: int = -1  # -1: everything trains (official); see ResNet
    norm_eval: bool = False  # official: BN trainable; TAO's freeze_norm semantics are unverified
    grad_checkpoint: bool = True  # checkpoint backbone stages when training (TAO and official)
    input_size: tuple[int, int] = (960, 540)  # network input (W, H) pixels
    use_grid_mask: bool = True  # GridMask augmentation, applied by the training module (not in this network)
    # --- neck
    fpn_out_channels: int = 256
    num_levels: int = 4  # FPN outputs = levels sampled by the DFA (start_level 0, no extra convs)
    # --- dense depth (training only)
    use_depth_head: bool = True
    num_depth_layers: int = 3
    equal_focal: float = 100.0  # px
    max_depth: float = 60.0  # m
    depth_loss_weight: float = 0.2
    # --- head
    num_classes: int = len(CARD_CLASSES)
    embed_dims: int = 256
    anchor_embed_dims: tuple[int, int, int, int] = (128, 32, 32, 64)  # pos, size, yaw, vel (cat mode)
    anchor_encoder_loops: int = 4  # [Linear, ReLU, LN] blocks per anchor MLP (out_loops; in_loops 1)
    num_anchor: int = 900
    num_temp_instances: int = 600
    confidence_decay: float = 0.8
    default_time_interval: float = 0.033333  # s (the card's value, 30 fps)
    max_time_interval: float = 2.0  # s
    feat_grad: bool = False
    num_decoder: int = 6
    num_single_frame_decoder: int = 1
    num_heads: int = 8  # of the 2C-wide decoupled attention
    attn_dropout: float = 0.1
    ffn_channels: int = 1024
    ffn_dropout: float = 0.1
    num_groups: int = 8
    num_learnable_pts: int = 6
    fix_scale: tuple[tuple[float, float, float], ...] = FIX_SCALE_045
    dfa_attn_drop: float = 0.15
    use_camera_embed: bool = True  # our decision; TAO's default is 20 slots (False)
    max_num_cams: int = 20  # slot-based weights only
    camera_translation_scale: float = 10.0  # m, camera-embedding input normalisation
    refine_yaw: bool = True
    with_quality_estimation: bool = True
    add_anchor_velocity: bool = False  # TAO: v = displacement / dt
    # --- outputs / post-processing
    num_output: int = 300
    score_threshold: float = 0.05  # raw class probability; also the threshold for fresh instance ids
    cls_threshold_to_reg: float = 0.05
    # --- denoising (queries appended in training; built by the denoising helper)
    num_dn_groups: int = 5
    num_temp_dn_groups: int = 3
    max_dn_gt: int = 128
    dn_noise_scale: tuple[float, ...] = (2.0, 2.0, 2.0) + (0.5,) * 8
    # --- re-ID (TAO use_reid_sampling; off)
    use_reid: bool = False
    num_ids: int = 70
    visibility_hidden_channels: int = 32
    class_names: tuple[str, ...] = field(default=CARD_CLASSES)

    def __post_init__(self) -> None:
        problems = []
        if self.backbone not in _BACKBONE_CHANNELS:
            problems.append(f"backbone must be one of {sorted(_BACKBONE_CHANNELS)}")
        if self.embed_dims % self.num_groups:
            problems.append("embed_dims must be divisible by num_groups")
        if (2 * self.embed_dims) % self.num_heads:
            problems.append("2 * embed_dims must be divisible by num_heads")
        if sum(self.anchor_embed_dims) != self.embed_dims:
            problems.append("anchor_embed_dims must sum to embed_dims (cat mode)")
        if self.fpn_out_channels != self.embed_dims:
            problems.append("fpn_out_channels must equal embed_dims (the DFA samples FPN channels)")
        if not 0 <= self.num_temp_instances < self.num_anchor:
            problems.append("num_temp_instances must be in [0, num_anchor)")
        if not 1 <= self.num_single_frame_decoder <= self.num_decoder:
            problems.append("num_single_frame_decoder must be in [1, num_decoder]")
        if not 1 <= self.num_levels <= 4 or self.num_depth_layers > self.num_levels:
            problems.append("num_levels must be 1..4 and num_depth_layers <= num_levels")
        if len(self.class_names) != self.num_classes:
            problems.append("class_names must have num_classes entries")
        if problems:
            raise ValueError("invalid Sparse4DConfig: " + "; ".join(problems))

    @property
    def backbone_channels(self) -> tuple[int, ...]:
        """Channels of the backbone maps fed to the FPN: the first ``num_levels`` of C2..C5."""
        return _BACKBONE_CHANNELS[self.backbone][: self.num_levels]

    @property
    def num_pts(self) -> int:
        return len(self.fix_scale) + self.num_learnable_pts

    def replace(self, **changes) -> Sparse4DConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


FULL_R101 = Sparse4DConfig()
R50 = FULL_R101.replace(backbone="resnet50")
DEFAULT = Sparse4DConfig(
    backbone="resnet18",
    grad_checkpoint=False,  # recomputation only pays off when activations do not fit (GPU, full size)
    input_size=(320, 176),
    fpn_out_channels=128,
    embed_dims=128,
    anchor_embed_dims=(64, 16, 16, 32),
    num_anchor=256,
    num_temp_instances=128,
    num_decoder=3,
    num_heads=4,
    ffn_channels=512,
    num_groups=4,
    num_output=100,
    # GridMask and dropout regularise the card's long runs; in a few hundred CPU steps they only slow learning
    use_grid_mask=False,
    attn_dropout=0.0,
    ffn_dropout=0.0,
    dfa_attn_drop=0.0,
)

PRESETS: dict[str, Sparse4DConfig] = {"full_r101": FULL_R101, "r50": R50, "default": DEFAULT}


def get_preset(name: str) -> Sparse4DConfig:
    """The named preset; ValueError listing the names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown Sparse4D preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]
