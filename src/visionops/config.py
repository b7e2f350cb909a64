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
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from visionops.data.schema import CLASS_NAMES_2025

DEFAULT_PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """Invalid parameters. The message names the file, the dotted key and the fix."""


def _known_class_list(value: list[str]) -> list[str]:
    unknown = [c for c in value if c not in CLASS_NAMES_2025]
    if unknown or not value:
        raise ValueError(f"unknown classes {unknown}; allowed: {list(CLASS_NAMES_2025)}")
    return value


ClassList = Annotated[list[str], AfterValidator(_known_class_list)]
"""A non-empty list of 2025 class names."""


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
# convert
# --------------------------------------------------------------------------------------------------


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
    frame_step: int = Field(1, ge=1, description="write every n-th converted frame")

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


# --------------------------------------------------------------------------------------------------
# sparse4d
# --------------------------------------------------------------------------------------------------


class Sparse4DParams(Section):
    """Sparse4D model and training (issue 5 fills in the rest; the anchors need the count now)."""

    num_anchor: int = Field(900, ge=1, description="anchors (N, 11) from k-means over training GT centres")


# --------------------------------------------------------------------------------------------------
# detectnet_v2 and prune
# --------------------------------------------------------------------------------------------------

WAREHOUSE_KITTI_CLASSES = [name.lower() for name in CLASS_NAMES_2025]


class DetectNetTargetParams(Section):
    """GridBox rasterizer (TAO ``bbox_rasterizer_config``); per-class radii override the shared ones."""

    cov_radius: float = Field(0.4, gt=0, description="coverage ellipse semi-axis as a fraction of the half box")
    bbox_min_radius: float = Field(1.0, gt=0, description="smallest ellipse semi-axis, in grid cells")
    deadzone_radius: float = Field(0.67, ge=0, le=1)
    per_class_cov_radius: dict[str, float] = Field(
        default_factory=lambda: {"person": 1.0, "fouriergr1t2": 1.0, "agilitydigit": 1.0},
        description="thin classes get a fuller ellipse (TAO's KITTI spec uses 1.0 for pedestrians)")


class DetectNetAugmentParams(Section):
    """TAO augmentation ranges (pixels of the network input)."""

    hflip_probability: float = Field(0.5, ge=0, le=1)
    zoom_min: float = Field(1.0, gt=0)
    zoom_max: float = Field(1.0, gt=0)
    translate_max: float = Field(8.0, ge=0)
    hue_rotation_max: float = Field(25.0, ge=0, description="degrees")
    saturation_shift_max: float = Field(0.2, ge=0)
    contrast_scale_max: float = Field(0.1, ge=0)
    brightness_scale_max: float = Field(0.0, ge=0)


class DetectNetOptimParams(Section):
    """One training phase: Adam with TAO's soft-start annealing schedule, L1 regularisation."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(8, ge=1)
    min_lr: float = Field(5e-6, gt=0)
    max_lr: float = Field(5e-4, gt=0)
    soft_start: float = Field(0.1, ge=0, le=1)
    annealing: float = Field(0.7, ge=0, le=1)
    l1_weight: float = Field(3e-9, ge=0, description="TAO L1 regulariser on every conv weight and bias")
    validate_every: int = Field(5, ge=1, description="epochs between validations (sample detections to MLflow)")


class DetectNetPostprocessParams(Section):
    """Clustering of the grid outputs into boxes (TAO ``clustering_config``)."""

    algorithm: Literal["dbscan", "nms"] = "dbscan"
    coverage_threshold: float = Field(0.005, ge=0, lt=1)
    minimum_bounding_box_height: float = Field(4.0, ge=0)
    dbscan_eps: float = Field(0.3, gt=0)
    dbscan_min_samples: float = Field(1.0, ge=0)
    dbscan_confidence_threshold: float = Field(0.1, ge=0)
    nms_iou_threshold: float = Field(0.5, ge=0, le=1)
    nms_confidence_threshold: float = Field(0.2, ge=0)


class DetectNetParams(Section):
    """DetectNet_v2 (DashCamNet recipe): phase-1 training, pruning (``prune``), phase-2 retraining, KPIs."""

    arch: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet18"
    all_projections: bool = True
    input_size: tuple[int, int] = Field((480, 272), description="network input [width, height], multiples of 16")
    classes: list[str] = Field(default_factory=lambda: list(WAREHOUSE_KITTI_CLASSES),
                               description="KITTI class names in output-channel order (matched lower-cased)")
    pretrained: str | None = Field(None, description="torchvision ImageNet ResNet weights file (.pth); null = scratch")
    seed: int = 0
    workers: int = Field(2, ge=0, description="DataLoader worker processes")
    class_weights: list[float] | None = None
    objective_weights: tuple[float, float] = Field((1.0, 10.0), description="(coverage, bbox) initial weights")
    coverage_foreground_weight: float = Field(0.05, ge=0, le=1)
    targets: DetectNetTargetParams = Field(default_factory=DetectNetTargetParams)
    augment: DetectNetAugmentParams = Field(default_factory=DetectNetAugmentParams)
    train: DetectNetOptimParams = Field(default_factory=DetectNetOptimParams)
    retrain: DetectNetOptimParams = Field(default_factory=lambda: DetectNetOptimParams(epochs=20, l1_weight=0.0))
    postprocess: DetectNetPostprocessParams = Field(default_factory=DetectNetPostprocessParams)
    iou_threshold: float = Field(0.5, gt=0, le=1, description="KPI matching IoU (the DashCamNet card: 0.5)")
    score_threshold: float = Field(0.3, ge=0, description="confidence for precision/recall/accuracy")

    @field_validator("input_size")
    @classmethod
    def _multiple_of_16(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] % 16 or value[1] % 16 or min(value) < 32:
            raise ValueError(f"input_size must be multiples of 16 (>= 32), got {list(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DetectNetParams:
        unknown = sorted(set(self.targets.per_class_cov_radius) - set(self.classes))
        if unknown:
            raise ValueError(f"targets.per_class_cov_radius names classes {unknown} not in classes {self.classes}")
        if self.class_weights is not None and len(self.class_weights) != len(self.classes):
            raise ValueError(f"class_weights has {len(self.class_weights)} values for {len(self.classes)} classes")
        return self


class PruneParams(Section):
    """TAO ``prune`` (``-pth -n -eq -pg -nf -el``) on the phase-1 DetectNet_v2."""

    threshold: float = Field(0.1, ge=0, description="-pth: normalised filter norm to keep")
    normalizer: Literal["max", "L2"] = "max"
    equalization: Literal["union", "intersection", "arithmetic_mean", "geometric_mean"] = "union"
    granularity: int = Field(8, ge=1)
    min_num_filters: int = Field(16, ge=1)
    excluded_layers: list[str] = Field(default_factory=list)


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
    convert: ConvertParams = Field(default_factory=ConvertParams)
    sparse4d: Sparse4DParams = Field(default_factory=Sparse4DParams)
    detectnet_v2: DetectNetParams = Field(default_factory=DetectNetParams)
    prune: PruneParams = Field(default_factory=PruneParams)
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
