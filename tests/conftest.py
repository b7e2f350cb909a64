"""Shared fixtures: an isolated MLflow store per test and small raw scenes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from factories import make_scene

# huggingface_hub reads HF_HUB_OFFLINE once, at import: set it before any test module imports it, so no test
# can ever reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own MLflow sqlite store and never sees the developer's env or network."""
    store = tmp_path_factory.mktemp("mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "visionops-tests")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "tests@visionops.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "visionops-tests")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "tests@visionops.invalid")
    for var in ("DVC_ROOT", "DVC_STAGE", "DVC_EXP_NAME"):
        monkeypatch.delenv(var, raising=False)
    # Each test's own tracking setup: the module caches the configured URI per process.
    from visionops import tracking

    tracking._configured.cache_clear()
    yield


@pytest.fixture(scope="session")
def _pristine_scene(tmp_path_factory) -> Path:
    return make_scene(tmp_path_factory.mktemp("pristine") / "Warehouse_000")


@pytest.fixture
def tiny_scene(_pristine_scene, tmp_path) -> Path:
    """A fresh, writable copy of a valid 2-camera, 4-frame scene with depth and GT."""
    target = tmp_path / "train" / "Warehouse_000"
    shutil.copytree(_pristine_scene, target)
    return target
