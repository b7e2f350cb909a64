"""``data``: where the raw scenes come from (synthetic renderer, HuggingFace, a local folder)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from visionops.config.base import ClassList, Section
from visionops.data.schema import CLASS_NAMES_2025

LAST_SCENE_WITH_AICITY_ID = 20
"""Warehouse_000-020 have AI City 2025 scene ids (``evaluation.aicity_format.SCENE_IDS``)."""


class SyntheticParams(Section):
    """The built-in synthetic warehouse (data.source = synthetic)."""

    seed: int = 0
    scenes: dict[Literal["train", "val", "test"], int] = Field(
        default_factory=lambda: {"train": 80, "val": 2},
        description="number of scenes per split; test scenes are written without ground truth",
    )
    cameras: int = Field(4, ge=1, le=64)
    frames: int = Field(60, ge=1, description="frames per camera")
    fps: float = Field(30.0, gt=0)
    width: int = Field(960, ge=32, le=7680)
    height: int = Field(540, ge=32, le=4320)
    floor_size: tuple[float, float] = Field((20.0, 15.0), description="warehouse floor x, y extent in metres")
    classes: ClassList = Field(default_factory=lambda: list(CLASS_NAMES_2025))
    objects_per_scene: tuple[int, int] = Field((6, 10), description="(min, max) objects in a scene")
    depth: bool = True
    camera_naming: Literal["four_digit", "two_digit"] = "four_digit"
    crf: int = Field(18, ge=0, le=51, description="x264 constant rate factor of the videos")
    min_visible_pixels: int = Field(16, ge=1)
    workers: int = Field(2, ge=1, description="processes rendering cameras in parallel")

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (H.264 yuv420p), got {value}")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticParams:
        lo, hi = self.objects_per_scene
        if not 0 <= lo <= hi:
            raise ValueError(f"objects_per_scene must be (min, max) with 0 <= min <= max, got {self.objects_per_scene}")
        if min(self.floor_size) <= 2:
            raise ValueError(f"floor_size must be larger than 2 m in both directions, got {self.floor_size}")
        # Tracks of val/test scenes need an AI City 2025 scene id, which only Warehouse_000-020 have: val and test
        # keep the real split's names and sizes; train scenes past 15 are named from Warehouse_021 on.
        from visionops.data.synthetic.scene import SPLIT_REAL_SCENES, scene_number  # noqa: PLC0415 - heavy module

        for split in ("val", "test"):
            count = int(self.scenes.get(split, 0))
            if count > SPLIT_REAL_SCENES[split][1]:
                last = scene_number(self.scenes, split, count - 1)
                raise ValueError(
                    f"scenes {dict(self.scenes)} would name {split} scenes up to Warehouse_{last:03d}, but AI City "
                    f"2025 track files only have scene ids for Warehouse_000-{LAST_SCENE_WITH_AICITY_ID:03d}: use at "
                    "most 2 val and 4 test scenes (the real split's sizes); train may have any number (scenes past "
                    "the 15th are named Warehouse_021 and up)")
        return self


class HuggingFaceParams(Section):
    """The real MTMC 2025 data from the HuggingFace Hub (data.source = huggingface)."""

    repo_id: str = "nvidia/PhysicalAI-SmartSpaces"
    subset: str = "MTMC_Tracking_2025"
    revision: str = Field(
        "main",
        description="branch, tag or commit; pin a 40-hex commit for reproducibility (the stage logs the resolved one)",
    )
    splits: list[Literal["train", "val", "test"]] = Field(default_factory=lambda: ["train", "val"])
    scenes: list[str] | None = Field(None, description="scene names to fetch (e.g. Warehouse_000); null = all")
    include_depth: bool = Field(False, description="depth maps make the download 3.3 TB instead of ~70 GB")
    cache_dir: str | None = Field(None, description="HF cache folder; null = HF_HOME / the default cache")
    max_workers: int = Field(8, ge=1)
    link: Literal["symlink", "hardlink", "copy"] = Field(
        "symlink", description="how data/raw points at the HF cache files"
    )


class LocalParams(Section):
    """An existing folder in the raw layout (data.source = local)."""

    path: str = Field("", description="folder holding <split>/<Scene>/ (or one scene folder)")
    split: Literal["train", "val", "test"] = Field("train", description="split of a single-scene folder")
    link: Literal["symlink", "copy"] = "symlink"


class DataParams(Section):
    source: Literal["synthetic", "huggingface", "local"] = "synthetic"
    raw_dir: str = "data/raw"
    synthetic: SyntheticParams = Field(default_factory=SyntheticParams)
    huggingface: HuggingFaceParams = Field(default_factory=HuggingFaceParams)
    local: LocalParams = Field(default_factory=LocalParams)
    validate_decode: bool = Field(
        False, description="validate by decoding every video frame (slow) instead of reading container headers"
    )


