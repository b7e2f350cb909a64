import subprocess
from pathlib import Path

import mlflow
import pytest

from visionops import tracking
from visionops.config import Params


def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    (path / "f.txt").write_text("x")
    subprocess.run(["git", "add", "."], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, check=True)
    return path


def test_root_prefers_dvc_root_then_git(tmp_path, monkeypatch):
    repo = _git_repo(tmp_path / "repo")
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert tracking.project_root() == repo.resolve()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "elsewhere"))
    assert tracking.project_root() == (tmp_path / "elsewhere").resolve()


def test_default_uri_is_sqlite_under_root_and_env_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri(tmp_path) == "http://mlflow.example:5000"
    assert tracking.artifact_location("data", tmp_path) is None


def test_temp_clone_writes_into_the_real_store(tmp_path, monkeypatch):
    """DVC queue runs execute in .dvc/tmp/exps/<clone> with DVC_ROOT set: runs must land in the real store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    real = _git_repo(tmp_path / "real")
    clone = _git_repo(real / ".dvc" / "tmp" / "exps" / "clone")
    monkeypatch.chdir(clone)
    monkeypatch.setenv("DVC_ROOT", str(real))
    monkeypatch.setenv("DVC_STAGE", "download")
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    with tracking.stage_run("download", "data", Params().data, params_prefix="data.") as run:
        mlflow.log_metric("x", 1.0)
    assert (real / "mlruns" / "mlflow.db").is_file()
    assert not (clone / "mlruns").exists()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("data")
    assert exp.artifact_location == (real / "mlruns" / "artifacts" / "data").resolve().as_uri()
    for family in tracking.EXPERIMENTS:
        assert client.get_experiment_by_name(family) is not None
    got = client.get_run(run.info.run_id)
    assert got.data.tags["dvc.stage"] == "download" and got.data.tags["dvc.exp_name"] == "exp-1"
    assert got.data.tags["git.dirty"] == "false" and len(got.data.tags["git.commit"]) == 40


def test_stage_run_logs_params_tags_and_metrics(tmp_path, monkeypatch):
    repo = _git_repo(tmp_path / "repo")
    (repo / "f.txt").write_text("changed")  # tracked change -> dirty
    monkeypatch.chdir(repo)
    params = Params()
    with tracking.stage_run("download", "data", params.data, params_prefix="data.") as run:
        pass
    got = mlflow.MlflowClient().get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["data.synthetic.frames"] == str(params.data.synthetic.frames)
    assert got.data.params["data.source"] == "synthetic"
    assert got.data.tags["git.dirty"] == "true"
    assert got.data.tags["params.digest"] == tracking.digest(params.data)
    assert got.data.tags["mlflow.runName"] == "download"
    assert "stage_seconds" in got.data.metrics


def test_failed_stage_run_is_marked_failed_with_the_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="boom"), tracking.stage_run("download", "data", {"a": 1}) as run:
        raise ValueError("boom")
    got = mlflow.MlflowClient().get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["error"] == "ValueError: boom"
    assert mlflow.active_run() is None


def test_child_run_and_long_param_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with tracking.stage_run("pipeline", "sparse4d", {"a": 1}) as parent:
        pass
    with tracking.stage_run("train", "sparse4d", {"long": "x" * 10000}, parent_run_id=parent.info.run_id) as child:
        pass
    got = mlflow.MlflowClient().get_run(child.info.run_id)
    assert got.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert len(got.data.params["long"]) == tracking.MLFLOW_PARAM_MAX_CHARS


def test_dvc_lock_written_by_repro_does_not_make_the_tree_dirty(tmp_path):
    repo = _git_repo(tmp_path / "repo")
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    subprocess.run(["git", "add", "dvc.lock"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "lock"], cwd=repo, check=True)
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")  # what dvc does between stages
    assert tracking.git_state(repo)["git.dirty"] == "false"
    (repo / "f.txt").write_text("changed")
    assert tracking.git_state(repo)["git.dirty"] == "true"


def test_metrics_and_plots_rewritten_by_stages_do_not_make_the_tree_dirty(tmp_path):
    repo = _git_repo(tmp_path / "repo")
    for rel in ("metrics/m.json", "plots/p/pr.csv", "src/metrics/code.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("0\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "results"], cwd=repo, check=True)
    (repo / "metrics/m.json").write_text("1\n")  # a `cache: false` metric rewritten by its stage
    (repo / "plots/p/pr.csv").write_text("1\n")
    assert tracking.git_state(repo)["git.dirty"] == "false"
    (repo / "src/metrics/code.py").write_text("1\n")  # code in a folder merely named metrics still counts
    assert tracking.git_state(repo)["git.dirty"] == "true"
