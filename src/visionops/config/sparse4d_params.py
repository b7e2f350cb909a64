"""``sparse4d``: architecture preset (+ overrides), classes, training, augmentation and inference settings.

The architecture is a named preset of :mod:`visionops.models.sparse4d.presets` (``default`` for a 2-core CPU,
``r50`` / ``full_r101`` for the TAO card) with a few top-level overrides (``num_anchor``, ``input_size``,
``classes``) and a free ``model: {field: value}`` dict for any other :class:`Sparse4DConfig` field. The dict
is checked against the dataclass here, so a typo fails at ``params check`` time, not mid-training.
:meth:`Sparse4DParams.architecture` returns the resulting config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from visionops.config.base import ClassList, Section

_CARD_CLASSES = ["Person", "Forklift", "NovaCarter", "Transporter", "FourierGR1T2", "AgilityDigit"]
_TOP_LEVEL = {"num_anchor": "sparse4d.num_anchor", "input_size": "sparse4d.input_size",
              "num_classes": "sparse4d.classes", "class_names": "sparse4d.classes",
              "score_threshold": "sparse4d.infer.score_threshold", "num_output": "sparse4d.infer.num_output"}
"""Config fields with their own params key: setting them under ``model`` would be ambiguous."""


def _range(value: tuple[float, float], name: str, lo: float = 0.0) -> tuple[float, float]:
    if not lo <= value[0] <= value[1]:
        raise ValueError(f"{name} must be [min, max] with {lo} <= min <= max, got {list(value)}")
    return value


class Sparse4DTrainParams(Section):
    """Optimisation and the temporal sampler (one frame per stream and step; the bank carries state)."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(2, ge=1, description="streams per step (per device); each plays its own sequence")
    lr: float = Field(1e-3, gt=0, description="AdamW peak lr of the head (official 6e-4 @ batch 48, TAO 1e-4)")
    backbone_lr_mult: float = Field(1.0, ge=0, description="backbone lr = lr * this (TAO 0.25, official 0.5)")
    weight_decay: float = Field(1e-3, ge=0, description="AdamW, applied to every parameter (both repos)")
    warmup_steps: int = Field(50, ge=0, description="linear warm-up from lr/3 (official/TAO: 500), then cosine")
    grad_clip: float = Field(25.0, ge=0, description="L2 max-norm of all gradients; 0 = off")
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = Field(
        "auto", description="auto: bf16-mixed on CUDA, 32-true on CPU; bf16-mixed is honoured on a CPU too, "
        "16-mixed needs CUDA")
    sequence_length: int = Field(30, ge=1, description="frames a slot plays before it starts a new sequence "
                                 "(the sampler's max_sequence_length; the bank resets between)")
    skip_probability: float = Field(0.5, ge=0, lt=1, description="per frame, skip one more (dt of 1-2 frames)")
    frame_step: int = Field(1, ge=1, description="use every n-th converted frame")
    steps_per_epoch: int | None = Field(80, ge=1, description="null = the sampler's default (about one pass)")
    seed: int = 0
    workers: int = Field(2, ge=0, description="DataLoader processes")
    validate_every: int = Field(1, ge=1, description="epochs between validations")
    resume: bool = Field(False, description="continue from models/sparse4d/model.ckpt when an interrupted run "
                         "left one (its last completed epoch); false = start over")


class Sparse4DAugmentParams(Section):
    """Augmentation, sampled once per sequence and folded into the projection matrices (specs §2.4). The keys are
    :class:`visionops.data.sparse4d_augment.Sparse4DAugment`'s fields: ``Sparse4DAugment(**augment.model_dump())``."""

    resize_lim: tuple[float, float] = Field((0.95, 1.1), description="zoom of the image fitted to input_size")
    bot_pct_lim: tuple[float, float] = Field((0.0, 0.05), description="fraction of the height cut from the bottom")
    flip_prob: float = Field(0.5, ge=0, le=1, description="horizontal image flip")
    rotate_deg: float = Field(0.0, ge=0, description="image rotation, +- degrees (official 5.4)")
    bev_rot_rad: float = Field(0.3925, ge=0, description="scene rotation about z, +- radians (official 0.3925)")
    bev_scale_lim: tuple[float, float] = Field((0.95, 1.05), description="scene scale range")
    bev_flip_x_prob: float = Field(0.5, ge=0, le=1, description="mirror the scene's x axis")
    bev_flip_y_prob: float = Field(0.5, ge=0, le=1, description="mirror the scene's y axis")

    @field_validator("resize_lim", "bev_scale_lim")
    @classmethod
    def _positive_range(cls, value: tuple[float, float], info) -> tuple[float, float]:
        if value[0] <= 0:
            raise ValueError(f"{info.field_name} must be > 0, got {list(value)}")
        return _range(value, info.field_name)

    @field_validator("bot_pct_lim")
    @classmethod
    def _fraction_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[1] >= 1:
            raise ValueError(f"bot_pct_lim must stay below 1, got {list(value)}")
        return _range(value, "bot_pct_lim")


class Sparse4DInferParams(Section):
    """Post-processing (specs §1.9, §3)."""

    score_threshold: float = Field(0.05, ge=0, le=1, description="raw class probability to output / get an id")
    tracking_threshold: float = Field(0.2, ge=0, le=1, description="min score of a reported track; also the "
                                      "threshold of validation metrics and preview images")
    num_output: int | None = Field(None, ge=1, description="top-k queries before the threshold; null = preset")


DETECTNET_BACKBONE = "models/detectnet_v2/phase1.ckpt"
"""The default ``sparse4d.pretrained``: 400 CPU steps from scratch left every score flat (recall@2m 0)."""


class Sparse4DParams(Section):
    """Sparse4D model, training, augmentation and inference."""

    preset: Literal["default", "r50", "full_r101"] = Field(
        "default", description="architecture: default (CPU, ResNet-18) | r50 | full_r101 (the TAO card)")
    num_anchor: int = Field(256, ge=1, description="queries = anchors (N, 11) from k-means over training GT "
                            "centres; overrides the preset's (temporal instances keep the preset's ratio)")
    input_size: tuple[int, int] | None = Field(None, description="[width, height]; null = the preset's")
    classes: ClassList = Field(default_factory=lambda: list(_CARD_CLASSES))
    pretrained: str | None = Field(
        DETECTNET_BACKBONE, description="backbone weights: DetectNet_v2's phase-1 checkpoint (same ResNet-18, "
        "trained on the same frames), a torchvision ImageNet ResNet file, or null = scratch")
    model: dict[str, Any] = Field(default_factory=dict, description="other Sparse4DConfig fields, e.g. "
                                  "{num_decoder: 4, use_grid_mask: false}")
    train: Sparse4DTrainParams = Field(default_factory=Sparse4DTrainParams)
    augment: Sparse4DAugmentParams = Field(default_factory=Sparse4DAugmentParams)
    infer: Sparse4DInferParams = Field(default_factory=Sparse4DInferParams)

    @field_validator("input_size")
    @classmethod
    def _plausible_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (min(value) < 32 or value[0] > 4096 or value[1] > 4096):
            raise ValueError(f"input_size must be [width, height] between 32 and 4096, got {list(value)}")
        return value

    @field_validator("model")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        from visionops.models.sparse4d.presets import Sparse4DConfig  # noqa: PLC0415

        fields = {f.name: f for f in dataclasses.fields(Sparse4DConfig)}
        for key, item in value.items():
            if key in _TOP_LEVEL:
                raise ValueError(f"{key!r}: set it with {_TOP_LEVEL[key]}, not under sparse4d.model")
            if key not in fields:
                allowed = ", ".join(sorted(set(fields) - set(_TOP_LEVEL)))
                raise ValueError(f"unknown Sparse4DConfig field {key!r}; allowed: {allowed}")
            _check_type(key, item, getattr(Sparse4DConfig(), key))
        return value

    @model_validator(mode="after")
    def _buildable(self) -> Sparse4DParams:
        self.architecture()  # the dataclass's own cross-field checks (ValueError -> a params error)
        return self

    def architecture(self):
        """The :class:`~visionops.models.sparse4d.presets.Sparse4DConfig` these params describe."""
        from visionops.models.sparse4d.presets import get_preset  # noqa: PLC0415

        base = get_preset(self.preset)
        changes: dict[str, Any] = {key: _as_tuple(item) for key, item in self.model.items()}
        changes.update(num_anchor=self.num_anchor, num_classes=len(self.classes), class_names=tuple(self.classes),
                       score_threshold=self.infer.score_threshold)
        if "num_temp_instances" not in self.model and self.num_anchor != base.num_anchor:
            # keep the preset's temporal share (card 600/900, default 128/256) for any anchor count
            changes["num_temp_instances"] = self.num_anchor * base.num_temp_instances // base.num_anchor
        if self.input_size is not None:
            changes["input_size"] = tuple(self.input_size)
        if self.infer.num_output is not None:
            changes["num_output"] = self.infer.num_output
        return base.replace(**changes)


def _as_tuple(value: Any) -> Any:
    """YAML lists -> the dataclass's tuples (nested for ``fix_scale``)."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def _check_type(key: str, value: Any, default: Any) -> None:
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str),
          tuple: lambda v: isinstance(v, list | tuple)}.get(type(default), lambda v: True)(value)
    if not ok:
        raise ValueError(f"sparse4d.model.{key} must be a {type(default).__name__} like {default!r}, got {value!r}")
