"""Base of every params section, the error type, and shared field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

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


