"""Typed pipeline parameters: ``params.yaml`` -> pydantic models.

``params.yaml`` is the single source of truth; DVC reads it by key and every stage and CLI command
loads it through :func:`load_params`. Unknown or mistyped keys fail with their dotted path and the
allowed keys, so a typo never silently falls back to a default.

Overrides use DVC's ``-S key=value`` syntax (``dvc exp run -S data.synthetic.frames=60``); values are
parsed as YAML, so ``-S data.synthetic.scenes='{train: 1}'`` and ``-S data.synthetic.depth=false`` work.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from visionops.data.schema import CLASS_NAMES_2025

DEFAULT_PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """Invalid parameters. The message names the file, the dotted key and the fix."""


class Section(BaseModel):
    """Base of every params section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


class SyntheticParams(Section):
    """The built-in synthetic warehouse (data.source = synthetic)."""

    seed: int = 0
    scenes: dict[Literal["train", "val", "test"], int] = Field(
        default_factory=lambda: {"train": 2, "val": 1},
        description="number of scenes per split; test scenes are written without ground truth",
    )
    cameras: int = Field(4, ge=1, le=64)
    frames: int = Field(150, ge=1, description="frames per camera")
    fps: float = Field(30.0, gt=0)
    width: int = Field(960, ge=32, le=7680)
    height: int = Field(540, ge=32, le=4320)
    floor_size: tuple[float, float] = Field((20.0, 15.0), description="warehouse floor x, y extent in metres")
    classes: list[str] = Field(default_factory=lambda: list(CLASS_NAMES_2025))
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

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CLASS_NAMES_2025]
        if unknown or not value:
            raise ValueError(f"unknown classes {unknown}; allowed: {list(CLASS_NAMES_2025)}")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticParams:
        lo, hi = self.objects_per_scene
        if not 0 <= lo <= hi:
            raise ValueError(f"objects_per_scene must be (min, max) with 0 <= min <= max, got {self.objects_per_scene}")
        if min(self.floor_size) <= 2:
            raise ValueError(f"floor_size must be larger than 2 m in both directions, got {self.floor_size}")
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


# --------------------------------------------------------------------------------------------------
# tracking
# --------------------------------------------------------------------------------------------------


class TrackingParams(Section):
    """MLflow settings (the store location itself comes from the repo root or MLFLOW_TRACKING_URI)."""

    experiment_prefix: str = Field("", description="prepended to experiment names, e.g. 'team-a/'")
    log_system_metrics: bool = False


class Params(Section):
    """The whole ``params.yaml``."""

    data: DataParams = Field(default_factory=DataParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)


# --------------------------------------------------------------------------------------------------
# loading, overrides and error messages
# --------------------------------------------------------------------------------------------------


def _model_at(model: type[BaseModel], path: Iterable[str | int]) -> type[BaseModel] | None:
    """The pydantic model class reached by following ``path`` through nested fields, if any."""
    current: Any = model
    for part in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid parameters"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        dotted = ".".join(loc) or "<root>"
        if err["type"] == "extra_forbidden":
            parent = _model_at(Params, loc[:-1])
            allowed = ", ".join(parent.model_fields) if parent else "?"
            lines.append(f"  {dotted}: unknown key. Allowed keys here: {allowed}")
        else:
            value = err.get("input")
            shown = repr(value) if not isinstance(value, Mapping) else "{...}"
            lines.append(f"  {dotted}: {err['msg']} (got {shown})")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (["a", "b", "c"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value (as dvc exp run -S)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key segment in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.path=value`` applied.

    Keys are checked against the schema: a typo fails here with the allowed keys instead of being
    added as a new key.
    """
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for depth, part in enumerate(path[:-1]):
            model = _model_at(Params, path[:depth])
            if model is not None and part not in model.model_fields:
                raise ConfigError(
                    f"override {text!r}: unknown key {'.'.join(path[: depth + 1])}. "
                    f"Allowed keys here: {', '.join(model.model_fields)}"
                )
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[: depth + 1])} is not a section")
            node = child
        leaf_model = _model_at(Params, path[:-1])
        if leaf_model is not None and path[-1] not in leaf_model.model_fields:
            raise ConfigError(
                f"override {text!r}: unknown key {'.'.join(path)}. "
                f"Allowed keys here: {', '.join(leaf_model.model_fields)}"
            )
        node[path[-1]] = value
    return out


def read_params_file(path: str | os.PathLike = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the repository root or pass --params FILE)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def validate_params(data: Mapping[str, Any], source: str = DEFAULT_PARAMS_FILE) -> Params:
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_params(path: str | os.PathLike = DEFAULT_PARAMS_FILE, overrides: Iterable[str] = ()) -> Params:
    """Load, override and validate ``params.yaml``; raises :class:`ConfigError` with dotted key paths."""
    overrides = list(overrides)
    data = apply_overrides(read_params_file(path), overrides)
    source = str(path) + (f" (with overrides {overrides})" if overrides else "")
    return validate_params(data, source)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and tuples stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def section_dict(section: BaseModel) -> dict[str, Any]:
    return section.model_dump(mode="json")


def digest(section: BaseModel | Mapping[str, Any]) -> str:
    """Short, order-independent sha256 of a params section (12 hex chars)."""
    data = section.model_dump(mode="json") if isinstance(section, BaseModel) else dict(section)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
