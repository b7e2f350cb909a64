"""Fixtures for the conversion tests: a tiny rendered raw dataset and its conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from convert_factories import RAW_PARAMS, run_conversion

from visionops.config import SyntheticParams


@pytest.fixture(scope="session")
def rendered_raw(tmp_path_factory) -> Path:
    """``raw/<split>/<Scene>`` of one train and one val synthetic scene (3 cameras, 10 frames, 192x108)."""
    from visionops.data.synthetic import render_dataset  # noqa: PLC0415

    raw = tmp_path_factory.mktemp("convert_raw") / "raw"
    render_dataset(SyntheticParams(**RAW_PARAMS), raw)
    return raw


@pytest.fixture
def raw_copy(rendered_raw, tmp_path) -> Path:
    """A writable copy of the rendered raw dataset (for corruption tests)."""
    target = tmp_path / "raw"
    shutil.copytree(rendered_raw, target)
    return target


@pytest.fixture(scope="session")
def converted(rendered_raw, tmp_path_factory):
    """(OutputDirs, report, messages) of converting ``rendered_raw`` with the default params (1 worker)."""
    return run_conversion(rendered_raw, tmp_path_factory.mktemp("converted"))
