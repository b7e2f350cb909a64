"""``convert`` (frame store, OVPKL, BEV groups, KITTI, anchors); ``sparse4d`` lives in :mod:`.sparse4d_params`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from visionops.config.base import ClassList, Section
from visionops.data.schema import CLASS_NAMES_2025


class BevGroupParams(Section):
    """How cameras are split into BEV groups (sub-scenes) for OVPKL."""

    mode: Literal["all", "random", "coverage"] = Field(
        "coverage",
        description="all: one group of every camera; random: TAO's num_groups groups of group_size cameras "
        "(seeded); coverage: deterministic groups of at most max_cameras with overlapping floor footprints",
    )
    max_cameras: int = Field(8, ge=1, description="coverage: largest group")
    num_groups: int = Field(3, ge=1, description="random: number of groups")
    group_size: tuple[int, int] = Field((5, 10), description="random: (min, max) cameras per group")
    seed: int = 0
    dilation_m: float = Field(1.0, ge=0, description="footprints are dilated by this before taking the origin")
    max_range_m: float = Field(40.0, gt=0, description="footprint cut-off and valid_flag range from the origin")

    @model_validator(mode="after")
    def _sizes(self) -> BevGroupParams:
        lo, hi = self.group_size
        if not 1 <= lo <= hi:
            raise ValueError(f"group_size must be (min, max) with 1 <= min <= max, got {self.group_size}")
        return self


class KittiParams(Section):
    """2D labels for DetectNet_v2 (KITTI format) from ``2d bounding box visible``."""

    class_names: dict[str, str] = Field(
        default_factory=lambda: {name: name.lower() for name in CLASS_NAMES_2025},
        description="GT class -> KITTI class name; GT classes not listed are not written",
    )
    min_width: float = Field(4.0, ge=0, description="visible boxes narrower than this (px, stored size) are dropped")
    min_height: float = Field(8.0, ge=0, description="visible boxes lower than this (px, stored size) are dropped")
    frame_step: int = Field(6, ge=1, description="write every n-th converted frame (consecutive frames at "
                            "30 fps are near duplicates for a 2D detector)")
    val_frame_step: int | None = Field(2, ge=1, description="frame step of the val split (the scored set: more "
                                       "frames make the KPIs less noisy and cost no training time); "
                                       "null = frame_step")

    @field_validator("class_names")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [c for c in value if c not in CLASS_NAMES_2025]
        if unknown:
            raise ValueError(f"unknown GT classes {unknown}; allowed: {list(CLASS_NAMES_2025)}")
        bad = [v for v in value.values() if not v or any(ch.isspace() for ch in v)]
        if bad:
            raise ValueError(f"KITTI class names must be non-empty without spaces, got {bad}")
        return value


class AnchorParams(Section):
    """k-means anchor priors for Sparse4D (their number is sparse4d.num_anchor)."""

    seed: int = 0
    max_points: int = Field(200_000, ge=1, description="GT centres sub-sampled to at most this many for k-means")


class ConvertParams(Section):
    """The ``convert`` stage: raw scenes -> HDF5 frame store, OVPKL, KITTI, anchors."""

    splits: list[Literal["train", "val", "test"]] = Field(
        default_factory=lambda: ["train", "val", "test"], description="splits converted when present in raw_dir"
    )
    fps: float | None = Field(None, gt=0, description="keep frames at this rate (a divisor of the source fps); "
                              "null = every frame")
    max_frames: int | None = Field(None, ge=1, description="convert only the first N source frames; null = all")
    resize: tuple[int, int] | None = Field(None, description="[width, height] of stored frames; null = source size")
    jpeg_quality: int = Field(95, ge=1, le=100)
    depth: bool = Field(True, description="copy depth maps into the frame store when the scene has them")
    classes: ClassList = Field(default_factory=lambda: list(CLASS_NAMES_2025),
                               description="GT classes kept in OVPKL (others dropped)")
    max_speed_mps: float = Field(5.0, gt=0, description="larger frame-to-frame speeds are reported as GT errors")
    workers: int = Field(2, ge=1, description="processes converting cameras in parallel")
    bev_groups: BevGroupParams = Field(default_factory=BevGroupParams)
    kitti: KittiParams = Field(default_factory=KittiParams)
    anchors: AnchorParams = Field(default_factory=AnchorParams)

    @field_validator("resize")
    @classmethod
    def _plausible_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (min(value) < 16 or value[0] > 7680 or value[1] > 4320):
            raise ValueError(f"resize must be [width, height] between 16 and 7680x4320, got {list(value)}")
        return value

