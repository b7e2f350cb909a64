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
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from visionops.config.base import DEFAULT_PARAMS_FILE, ClassList, ConfigError, Section
from visionops.config.convert_params import (
    AnchorParams,
    BevGroupParams,
    ConvertParams,
    KittiParams,
)
from visionops.config.data_params import DataParams, HuggingFaceParams, LocalParams, SyntheticParams
from visionops.config.detectnet_params import (
    DetectNetAugmentParams,
    DetectNetOptimParams,
    DetectNetParams,
    DetectNetPostprocessParams,
    DetectNetTargetParams,
    PruneParams,
)
from visionops.config.export_params import ExportParams, TensorRTParams
from visionops.config.profile_params import (
    DetectNetProfileParams,
    ProfileParams,
    Sparse4DProfileParams,
)
from visionops.config.sparse4d_params import (
    Sparse4DAugmentParams,
    Sparse4DInferParams,
    Sparse4DParams,
    Sparse4DTrainParams,
)
from visionops.config.sweep_params import (
    DetectNetSweepParams,
    SearchDim,
    Sparse4DSweepParams,
    SweepParams,
)

__all__ = [
    "DEFAULT_PARAMS_FILE", "AnchorParams", "BevGroupParams", "ClassList", "ConfigError", "ConvertParams",
    "DataParams", "DetectNetAugmentParams", "DetectNetOptimParams", "DetectNetParams", "DetectNetPostprocessParams",
    "DetectNetTargetParams", "ExportParams", "HuggingFaceParams", "KittiParams", "LocalParams", "Params",
    "PruneParams", "Section", "TensorRTParams",
    "Sparse4DAugmentParams", "Sparse4DInferParams", "Sparse4DParams", "Sparse4DTrainParams", "SyntheticParams",
    "DetectNetProfileParams", "ProfileParams", "Sparse4DProfileParams",
    "DetectNetSweepParams", "SearchDim", "Sparse4DSweepParams", "SweepParams",
    "TrackingParams", "apply_overrides", "digest", "flatten", "load_params",
    "parse_override", "read_params_file", "section_dict", "validate_params",
]

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
    export: ExportParams = Field(default_factory=ExportParams)
    profile: ProfileParams = Field(default_factory=ProfileParams)
    sweep: SweepParams = Field(default_factory=SweepParams)


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
