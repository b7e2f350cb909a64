import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from visionops import pipeline_completion, tracking
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


# --------------------------------------------------------------------------------------------------
# pipeline runs
# --------------------------------------------------------------------------------------------------


def _pipeline_repo(path: Path, **sections) -> Path:
    """A committed git repo holding a params.yaml (defaults, with ``sections`` merged in)."""
    path.mkdir(parents=True, exist_ok=True)
    _write_params(path, **sections)
    return _git_repo(path)


def _write_params(repo: Path, **sections) -> None:
    data = Params().model_dump(mode="json")
    for name, values in sections.items():
        _merge(data[name], values)
    (repo / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _parent(run) -> str:
    return mlflow.MlflowClient().get_run(run.info.run_id).data.tags["mlflow.parentRunId"]


def test_stages_of_one_execution_share_one_pipeline_run_per_family(tmp_path, monkeypatch):
    repo = _pipeline_repo(tmp_path / "repo", sparse4d={"train": {"lr": 3e-4, "epochs": 2}})
    monkeypatch.chdir(repo)
    params = Params()
    with tracking.stage_run("train_sparse4d", "sparse4d", params.sparse4d, params_prefix="sparse4d.") as train:
        assert tracking.log_headline_metrics({"params": 1234, "note": "not a number", "none": None})
    with tracking.stage_run("evaluate_sparse4d", "sparse4d", params.sparse4d.infer) as evaluate:
        tracking.log_headline_metrics(tracking.headline_from_metrics(
            "sparse4d", {"overall": {"HOTA": 41.5, "DetA": 40.0, "AssA": 43.0, "LocA": 80.0}, "units": "percent"}))
    with tracking.stage_run("evaluate_detectnet", "detectnet_v2", params.detectnet_v2) as detect:
        tracking.log_headline_metrics({"mAP": 0.5})
    assert tracking.current_pipeline_run() is None
    assert not tracking.log_headline_metrics({"HOTA": 1.0}), "outside a stage there is no pipeline run"

    client = mlflow.MlflowClient()
    sparse_parent = _parent(train)
    assert _parent(evaluate) == sparse_parent and _parent(detect) != sparse_parent
    pipe = client.get_run(sparse_parent)
    assert pipe.info.status == "FINISHED"
    assert pipe.data.tags[tracking.RUN_KIND_TAG] == "pipeline"
    assert pipe.data.tags["git.dirty"] == "false" and len(pipe.data.tags["git.commit"]) == 40
    assert pipe.data.metrics == {"params": 1234.0, "HOTA": 41.5, "DetA": 40.0, "AssA": 43.0, "LocA": 80.0}
    # headline params under short names, from params.yaml (what DVC hands the stage), the preset resolved
    assert pipe.data.params["lr"] == "0.0003" and pipe.data.params["epochs"] == "2"
    assert pipe.data.params["preset"] == "default" and pipe.data.params["backbone"] == "resnet18"
    assert pipe.data.params["resolution"] == "320x176"
    assert pipe.data.params["sparse4d.train.lr"] == "0.0003" and "detectnet_v2.arch" not in pipe.data.params
    detect_pipe = client.get_run(_parent(detect))
    assert detect_pipe.data.params["backbone"] == "resnet18" and detect_pipe.data.params["prune.threshold"] == "0.87"
    assert detect_pipe.data.metrics == {"mAP": 0.5}
    sparse_exp = client.get_experiment_by_name("sparse4d").experiment_id
    pipelines = client.search_runs([sparse_exp], f"tags.`{tracking.RUN_KIND_TAG}` = 'pipeline'")
    assert [r.info.run_id for r in pipelines] == [sparse_parent]


def test_pipeline_key_follows_family_params_code_and_experiment(tmp_path, monkeypatch):
    repo = _pipeline_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    sparse, detect = tracking.pipeline_key("sparse4d")[0], tracking.pipeline_key("detectnet_v2")[0]
    data = tracking.pipeline_key("data")[0]
    assert len({sparse, detect, data}) == 3
    # a DetectNet_v2 param: only that family's key changes
    _write_params(repo, detectnet_v2={"train": {"max_lr": 0.002}}, prune={"threshold": 0.2})
    assert tracking.pipeline_key("sparse4d")[0] == sparse and tracking.pipeline_key("data")[0] == data
    assert tracking.pipeline_key("detectnet_v2")[0] != detect
    # a per-model sub-section of a shared section belongs to that model only
    _write_params(repo)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "tracking: {log_system_metrics: true}\n")
    assert tracking.pipeline_key("sparse4d")[0] == sparse, "tracking settings do not change results"
    _write_params(repo)
    assert tracking.family_params("sparse4d", {"profile": {"sparse4d": 1, "detectnet_v2": 2, "repeats": 3}}) == {
        "profile": {"sparse4d": 1, "repeats": 3}}
    # a data param changes every family
    _write_params(repo, data={"synthetic": {"frames": 12}})
    assert tracking.pipeline_key("sparse4d")[0] != sparse and tracking.pipeline_key("data")[0] != data
    _write_params(repo)
    # what a pipeline writes while it runs is not a code change; real code changes and experiments are
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    subprocess.run(["git", "add", "dvc.lock"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "lock"], cwd=repo, check=True)
    sparse = tracking.pipeline_key("sparse4d")[0]
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    assert tracking.pipeline_key("sparse4d")[0] == sparse
    (repo / "f.txt").write_text("edited code")
    edited, parts = tracking.pipeline_key("sparse4d")
    assert edited != sparse and parts["changes"]
    monkeypatch.setenv("DVC_EXP_NAME", "lr-high")
    assert tracking.pipeline_key("sparse4d")[0] not in (sparse, edited)


def test_a_failed_stage_fails_its_pipeline_run_until_a_retry_succeeds(tmp_path, monkeypatch):
    monkeypatch.chdir(_pipeline_repo(tmp_path / "repo"))
    with pytest.raises(RuntimeError, match="diverged"), tracking.stage_run("train_sparse4d", "sparse4d", {}) as run:
        assert mlflow.MlflowClient().get_run(_parent(run)).info.status == "RUNNING"
        raise RuntimeError("diverged")
    client = mlflow.MlflowClient()
    assert client.get_run(_parent(run)).info.status == "FAILED"
    with tracking.stage_run("train_sparse4d", "sparse4d", {}) as retry:
        pass
    assert _parent(retry) == _parent(run)
    assert client.get_run(_parent(run)).info.status == "FINISHED"


def test_sweep_trials_and_opted_out_stages_have_no_pipeline_run(tmp_path, monkeypatch):
    monkeypatch.chdir(_pipeline_repo(tmp_path / "repo"))
    with tracking.stage_run("study", "sparse4d", {}, pipeline=False) as study:
        assert tracking.current_pipeline_run() is None
    with tracking.stage_run("trial", "sparse4d", {}, parent_run_id=study.info.run_id) as trial:
        assert not tracking.log_headline_metrics({"HOTA": 1.0})
    client = mlflow.MlflowClient()
    assert "mlflow.parentRunId" not in client.get_run(study.info.run_id).data.tags
    assert _parent(trial) == study.info.run_id
    exp = client.get_experiment_by_name("sparse4d").experiment_id
    assert not client.search_runs([exp], f"tags.`{tracking.RUN_KIND_TAG}` = 'pipeline'")


def test_finalize_names_stages_without_a_run_and_copies_their_metrics(tmp_path, monkeypatch):
    repo = _pipeline_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    stages = ["download", "convert", "train_sparse4d", "evaluate_sparse4d", "train_detectnet", "prune",
              "retrain", "evaluate_detectnet", "pipeline_runs"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {s: {"cmd": "true"} for s in stages}}))
    (repo / "metrics").mkdir()
    (repo / "metrics" / "sparse4d.json").write_text(json.dumps(
        {"units": "percent", "overall": {"HOTA": 12.5, "DetA": 10.0, "AssA": 15.0, "LocA": 70.0},
         "per_class": {"Person": {"HOTA": 99.0}}}))
    (repo / "metrics" / "detectnet_v2.json").write_text(json.dumps(
        {"phase1": {"mAP_integrated": 0.2, "params": 100}, "retrained": {"mAP_integrated": 0.25, "precision": 0.5,
                                                                           "recall": 0.4, "params": 60}}))
    (repo / "metrics" / "profile_sparse4d.json").write_text(json.dumps({"cameras_at_30fps": 6, "device": "cpu"}))
    raw = repo / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "manifest.json").write_text(json.dumps(
        {"scenes": [{"cameras": ["a", "b"], "frames": 6, "gt_objects": 3}]}))
    # this execution ran only train_sparse4d; evaluate_sparse4d and everything else came from DVC's run-cache
    with tracking.stage_run("train_sparse4d", "sparse4d", {}) as train:
        tracking.log_headline_metrics({"params": 1234, "HOTA": 13.0})
    lines: list[str] = []
    report = pipeline_completion.finalize_pipeline_runs(echo=lines.append)

    client = mlflow.MlflowClient()
    sparse = client.get_run(report["sparse4d"]["run_id"])
    assert sparse.info.run_id == _parent(train)
    assert sparse.data.tags[tracking.RESTORED_STAGES_TAG] == "evaluate_sparse4d"
    assert sparse.data.tags[tracking.RESTORED_FROM_TAG] == "metrics/profile_sparse4d.json,metrics/sparse4d.json"
    # a number the stage logged itself is kept; the missing ones come from the files; breakdowns stay out
    assert sparse.data.metrics == {"params": 1234.0, "HOTA": 13.0, "DetA": 10.0, "AssA": 15.0, "LocA": 70.0,
                                   "cameras_at_30fps": 6.0}
    detect = client.get_run(report["detectnet_v2"]["run_id"])
    assert report["detectnet_v2"]["created"] and report["detectnet_v2"]["ran"] == []
    assert detect.data.tags[tracking.RESTORED_STAGES_TAG] == "evaluate_detectnet,prune,retrain,train_detectnet"
    assert detect.data.metrics == {"mAP": 0.25, "precision": 0.5, "recall": 0.4, "params": 60.0,
                                   "phase1.mAP": 0.2, "phase1.params": 100.0}
    data = client.get_run(report["data"]["run_id"])
    assert data.data.metrics == {"scenes": 1.0, "cameras": 2.0, "camera_frames": 12.0, "gt_objects": 3.0}
    assert data.data.tags[tracking.RESTORED_FROM_TAG] == "data/raw/manifest.json"
    assert any("evaluate_sparse4d" in line and "run-cache" in line for line in lines)
    # idempotent: a second call finds the same runs and copies nothing new
    again = pipeline_completion.finalize_pipeline_runs(echo=lines.append)
    assert {f: r["run_id"] for f, r in again.items()} == {f: r["run_id"] for f, r in report.items()}
    assert not any(r["created"] or r["copied"] for r in again.values())


def test_stage_family_by_name():
    assert pipeline_completion.stage_family("download") == "data"
    assert pipeline_completion.stage_family("retrain") == "detectnet_v2"
    assert pipeline_completion.stage_family("export@sparse4d") == "sparse4d"
    assert pipeline_completion.stage_family("profile_detectnet") == "detectnet_v2"
    assert pipeline_completion.stage_family("something_else") is None


# --------------------------------------------------------------------------------------------------
# under DVC: dvc repro, the run-cache, dvc exp run (workspace and queue)
# --------------------------------------------------------------------------------------------------

FAKE_STAGE = '''"""A stand-in stage: opens the real stage_run and writes what a real stage of its name would."""
import json
import os
import shutil
import sys
from pathlib import Path

import mlflow

from visionops import tracking
from visionops.config import load_params

stage, family = sys.argv[1], sys.argv[2]
params = load_params("params.yaml")
section = params.sparse4d.train if family == "sparse4d" else params.detectnet_v2.train
with tracking.stage_run(stage, family, section):
    if stage == "train_sparse4d":
        Path("models").mkdir(exist_ok=True)
        Path("models/s.txt").write_text(str(params.sparse4d.train.lr))
        mlflow.log_text("weights", "checkpoints/model.txt")
        tracking.log_headline_metrics({"params": 10})
    else:
        lr = float(Path("models/s.txt").read_text()) if family == "sparse4d" else params.detectnet_v2.train.max_lr
        if family == "sparse4d":
            content = {"overall": {"HOTA": lr * 1e4, "DetA": 1.0, "AssA": 2.0, "LocA": 3.0}}
        else:
            content = {"retrained": {"mAP_integrated": lr * 100, "precision": 0.5, "recall": 0.25, "params": 7}}
        Path("metrics").mkdir(exist_ok=True)
        Path(f"metrics/{family}.json").write_text(json.dumps(content))
        tracking.log_headline_metrics(tracking.headline_from_metrics(family, content))
'''

FAKE_DVC_YAML = {"stages": {
    "train_sparse4d": {"cmd": "python stages/fake.py train_sparse4d sparse4d", "deps": ["stages/fake.py"],
                       "params": ["sparse4d.train.lr"], "outs": ["models/s.txt"]},
    "evaluate_sparse4d": {"cmd": "python stages/fake.py evaluate_sparse4d sparse4d",
                          "deps": ["models/s.txt", "stages/fake.py"],
                          "metrics": [{"metrics/sparse4d.json": {"cache": False}}]},
    "evaluate_detectnet": {"cmd": "python stages/fake.py evaluate_detectnet detectnet_v2", "deps": ["stages/fake.py"],
                           "params": ["detectnet_v2.train.max_lr"],
                           "metrics": [{"metrics/detectnet_v2.json": {"cache": False}}]},
    "pipeline_runs": {"cmd": "python stages/pipeline_runs.py",
                      "deps": ["metrics/sparse4d.json", "metrics/detectnet_v2.json", "stages/pipeline_runs.py"],
                      "params": [{"params.yaml": None}]},
}}
REPO = Path(__file__).resolve().parents[1]


def _run(repo: Path, *args: str, timeout: int = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _pipelines(client, family: str, **tags: str) -> list:
    exp = client.get_experiment_by_name(family)
    filters = [f"tags.`{tracking.RUN_KIND_TAG}` = 'pipeline'", *(f"tags.`{k}` = '{v}'" for k, v in tags.items())]
    return client.search_runs([exp.experiment_id], " and ".join(filters))


def _children(client, run) -> list[str]:
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    return sorted(c.data.tags["dvc.stage"] for c in children)


@pytest.mark.slow
def test_dvc_repro_run_cache_and_experiments_land_in_pipeline_runs(tmp_path):
    repo = _pipeline_repo(tmp_path / "repo", sparse4d={"train": {"lr": 2e-4}}, detectnet_v2={"train": {"max_lr": 1e-3}})
    (repo / "stages").mkdir()
    (repo / "stages" / "fake.py").write_text(FAKE_STAGE)
    shutil.copy2(REPO / "stages" / "pipeline_runs.py", repo / "stages" / "pipeline_runs.py")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(FAKE_DVC_YAML, sort_keys=False))
    (repo / ".gitignore").write_text("/mlruns/\n")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "fake pipeline")
    _run(repo, "dvc", "repro")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "results")
    # the store the stages wrote to (an explicit URI: an earlier test may have set another one process-wide)
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")

    (first,) = _pipelines(client, "sparse4d")
    assert _children(client, first) == ["evaluate_sparse4d", "train_sparse4d"]
    assert first.data.metrics["HOTA"] == pytest.approx(2.0) and first.data.metrics["params"] == 10
    assert first.data.params["lr"] == "0.0002" and first.data.tags[tracking.RESTORED_STAGES_TAG] == ""
    (detect,) = _pipelines(client, "detectnet_v2")
    assert _children(client, detect) == ["evaluate_detectnet"] and detect.data.metrics["mAP"] == pytest.approx(0.1)

    # A variant in the workspace: its own pipeline runs; DetectNet_v2 did not re-run, its numbers are copied.
    _run(repo, "dvc", "exp", "run", "-S", "sparse4d.train.lr=0.0005", "-n", "lr5")
    (lr5,) = _pipelines(client, "sparse4d", **{"dvc.exp_name": "lr5"})
    assert _children(client, lr5) == ["evaluate_sparse4d", "train_sparse4d"]
    assert lr5.data.metrics["HOTA"] == pytest.approx(5.0) and lr5.data.params["lr"] == "0.0005"
    (lr5_detect,) = _pipelines(client, "detectnet_v2", **{"dvc.exp_name": "lr5"})
    assert _children(client, lr5_detect) == []
    assert lr5_detect.data.tags[tracking.RESTORED_STAGES_TAG] == "evaluate_detectnet"
    assert lr5_detect.data.metrics["mAP"] == pytest.approx(0.1)

    # Back to the first lr: DVC restores both Sparse4D stages from its run-cache without running them.
    out = _run(repo, "dvc", "exp", "run", "-S", "sparse4d.train.lr=0.0002", "-n", "back")
    assert "Stage 'train_sparse4d' is cached - skipping run" in out
    (back,) = _pipelines(client, "sparse4d", **{"dvc.exp_name": "back"})
    assert _children(client, back) == []
    assert back.data.tags[tracking.RESTORED_STAGES_TAG] == "evaluate_sparse4d,train_sparse4d"
    assert back.data.tags[tracking.RESTORED_FROM_TAG] == "metrics/sparse4d.json"
    assert back.data.metrics["HOTA"] == pytest.approx(2.0)

    # Queued: runs in a temp clone under .dvc/tmp/exps, lands in this repo's store with its artifacts.
    _run(repo, "git", "checkout", "--", ".")
    _run(repo, "dvc", "exp", "run", "--queue", "-S", "sparse4d.train.lr=0.0007", "-n", "q7")
    _run(repo, "dvc", "queue", "start", "-j", "1")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = _run(repo, "dvc", "queue", "status")
        if "Success" in status or "Failed" in status:
            break
        time.sleep(2)
    assert "Success" in status, status
    (q7,) = _pipelines(client, "sparse4d", **{"dvc.exp_name": "q7"})
    assert q7.data.metrics["HOTA"] == pytest.approx(7.0)
    children = client.search_runs([q7.info.experiment_id], f"tags.`mlflow.parentRunId` = '{q7.info.run_id}'")
    train_q7 = next(c for c in children if c.data.tags["dvc.stage"] == "train_sparse4d")
    artifact = Path(train_q7.info.artifact_uri.removeprefix("file://")) / "checkpoints" / "model.txt"
    assert artifact.is_relative_to(repo / "mlruns" / "artifacts") and artifact.read_text() == "weights"
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
    shown = json.loads(_run(repo, "dvc", "exp", "show", "--json"))
    assert "q7" in json.dumps(shown) and "HOTA" in json.dumps(shown)
