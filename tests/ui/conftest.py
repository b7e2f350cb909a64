"""A tracking store with real pipeline runs of both model families, and a headless Chromium to look at them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from ui_helpers import VARIANTS

from visionops import tracking
from visionops.config import Params


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def record_pipeline_runs(repo: Path) -> dict[str, list[str]]:
    """Log both variants through the real stage_run path; returns the pipeline run ids per family."""
    ids: dict[str, list[str]] = {"sparse4d": [], "detectnet_v2": [], "data": []}
    for variant in VARIANTS:
        data = Params().model_dump(mode="json")
        data["sparse4d"]["train"]["lr"] = variant["sparse4d_lr"]
        data["detectnet_v2"]["train"]["max_lr"] = variant["detectnet_lr"]
        (repo / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        params = Params.model_validate(data)
        with tracking.stage_run("download", "data", params.data, params_prefix="data."):
            tracking.log_headline_metrics({"scenes": 7, "cameras": 28})
        with tracking.stage_run("train_sparse4d", "sparse4d", params.sparse4d, params_prefix="sparse4d."):
            tracking.log_headline_metrics({"params": 1_234_567})
        with tracking.stage_run("evaluate_sparse4d", "sparse4d", params.sparse4d.infer, params_prefix="infer."):
            overall = {"HOTA": variant["HOTA"], "DetA": variant["HOTA"] - 1, "AssA": variant["HOTA"] + 1, "LocA": 80.5}
            tracking.log_headline_metrics(tracking.headline_from_metrics("sparse4d", {"overall": overall}))
        for stage in ("train_detectnet", "prune", "retrain"):
            with tracking.stage_run(stage, "detectnet_v2", params.detectnet_v2, params_prefix="detectnet_v2."):
                pass
        with tracking.stage_run("evaluate_detectnet", "detectnet_v2", params.detectnet_v2,
                                params_prefix="detectnet_v2."):
            tracking.log_headline_metrics(tracking.headline_from_metrics("detectnet_v2", {
                "retrained": {"mAP_integrated": variant["mAP"], "precision": 0.625, "recall": 0.5, "params": 654321}}))
        for family in ids:
            ids[family].append(tracking.pipeline_run(family).run_id)
    return ids


@pytest.fixture
def tracked_repo(tmp_path, monkeypatch) -> tuple[Path, dict[str, list[str]]]:
    """A git repo whose mlruns/ holds two pipeline runs per model family (the default store, no env override)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text("/mlruns/\n")
    (repo / "params.yaml").write_text(yaml.safe_dump(Params().model_dump(mode="json"), sort_keys=False))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    tracking._configured.cache_clear()
    return repo, record_pipeline_runs(repo)
