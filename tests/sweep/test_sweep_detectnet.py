"""A real DetectNet_v2 sweep on the toy KITTI set: 3 trials, then 1 more in the same study.

Checks the study, the nested MLflow runs (parent + one child per trial, with the trial's params, curves and
objective), and the results folder (best_params.yaml ready for -S, tables, plots, all logged to the parent).
"""

from __future__ import annotations

import csv
import json
import re

import mlflow
import optuna
import pytest
import yaml
from sweep_helpers import detectnet_params

from visionops.config import load_params
from visionops.sweep.runner import run_sweep
from visionops.sweep.space import override_args

SPACE_KEYS = ["detectnet_v2.train.max_lr", "detectnet_v2.train.soft_start", "detectnet_v2.train.annealing"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(root, mlflow uri, result of 3 trials, result of 1 more trial, the study)."""
    from detectnet_factories import toy_kitti

    root = tmp_path_factory.mktemp("dn_sweep")
    toy_kitti(root / "data" / "kitti" / "train", count=4, seed=0)
    toy_kitti(root / "data" / "kitti" / "val", count=2, seed=1)
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    params = detectnet_params()
    # module scope runs before conftest's per-test store: this fixture's own store, set in-process too
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        from visionops import tracking

        tracking._configured.cache_clear()
        try:
            first = run_sweep(params, "detectnet_v2", 3, root=root)
            second = run_sweep(params, "detectnet_v2", 1, root=root)
        finally:
            tracking._configured.cache_clear()
            mlflow.set_tracking_uri(previous)
    study = optuna.load_study(study_name="detectnet_v2", storage=f"sqlite:///{root / 'mlruns' / 'optuna.db'}")
    return root, uri, first, second, study


def test_trials_finish_with_an_epoch_curve_each(swept):
    _, _, first, second, study = swept
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    for trial in trials:
        assert set(trial.params) == set(SPACE_KEYS)
        if trial.state.name == "COMPLETE":
            assert sorted(trial.intermediate_values) == [0, 1]  # one report per validation epoch (budget: 2)
            assert trial.value == trial.intermediate_values[1]
    assert first.summary["trials_this_run"] == 3 and sum(second.summary["trials"].values()) == 4
    assert first.parent_run_id == second.parent_run_id


def test_each_trial_is_a_child_run_of_the_study_parent(swept):
    _, uri, first, _, study = swept
    client = mlflow.MlflowClient(tracking_uri=uri)
    parent = client.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["optuna.study"] == "detectnet_v2"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{first.parent_run_id}'")
    by_trial = {int(run.data.tags["optuna.trial"]): run for run in children}
    assert sorted(by_trial) == [0, 1, 2, 3] and len(children) == 4
    for trial in study.get_trials():
        run = by_trial[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == trial.state.name
        for key, value in trial.params.items():
            assert float(run.data.params[key]) == pytest.approx(value, rel=1e-12)
        assert run.data.params["detectnet_v2.train.epochs"] == "2"  # the budget
        history = client.get_metric_history(run.info.run_id, "val/loss")  # the objective, every epoch
        assert [m.value for m in history] == pytest.approx([trial.intermediate_values[s]
                                                            for s in sorted(trial.intermediate_values)])
        if trial.state.name == "COMPLETE":
            assert run.data.metrics["objective"] == pytest.approx(trial.value)
            assert "train/loss_epoch" in run.data.metrics and "val/mAP" in run.data.metrics


def test_best_params_file_is_ready_for_dash_s(swept):
    root, _, _, second, study = swept
    folder = root / "sweeps" / "detectnet_v2"
    assert second.folder == folder
    text = (folder / "best_params.yaml").read_text()
    best = study.best_trial
    assert yaml.safe_load(text) == best.params
    command = re.search(r"^#   dvc exp run (.*)$", text, re.M).group(1)
    args = re.findall(r"-S (\S+)", command)
    assert args == override_args(best.params)
    # the -S arguments applied to the repo's params give exactly the best trial's values
    applied = load_params("params.yaml", args)
    for key, value in best.params.items():
        section, *path = key.split(".")
        node = getattr(applied, section)
        for part in path:
            node = getattr(node, part)
        assert node == value
    assert "reduced budget (detectnet_v2.train.epochs=2, detectnet_v2.train.validate_every=1)" in text


def test_tables_plots_and_parent_artifacts(swept):
    root, uri, first, _, study = swept
    folder = root / "sweeps" / "detectnet_v2"
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    assert [r["state"] for r in rows] == [t.state.name for t in study.get_trials()]
    assert all(r["mlflow_run_id"] and r["worker"] for r in rows)
    assert (folder / "trials.md").read_text().startswith("| number | state | value |")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best"]["number"] == study.best_trial.number
    for name in ("optimization_history", "param_importances", "intermediate_values"):
        png = folder / f"{name}.png"
        assert png.is_file() or name in summary["plots_skipped"], name
        if png.is_file():
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "optimization_history.png").is_file()
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = {a.path for a in client.list_artifacts(first.parent_run_id, "sweep")}
    assert {"sweep/best_params.yaml", "sweep/trials.csv", "sweep/trials.md", "sweep/optimization_history.png",
            "sweep/summary.json"} <= logged
    metrics = client.get_run(first.parent_run_id).data.metrics
    assert metrics["best/val/loss"] == pytest.approx(study.best_value)
    assert metrics.get("trials_complete", 0) + metrics.get("trials_pruned", 0) == 4
