"""Several worker processes on one study: sqlite (2 workers), a real PostgreSQL server (3 workers), and a worker
killed mid-trial whose trial is failed by the heartbeat check and retried with the same parameters."""

from __future__ import annotations

import multiprocessing
import time

import mlflow
import optuna
from sweep_helpers import detectnet_params

from visionops.sweep.runner import _worker_main, prepare, run_sweep


def _check_no_lost_or_duplicated_trials(result, storage: str, trials: int, workers: int) -> None:
    study = optuna.load_study(study_name=result.study, storage=storage)
    finished = study.get_trials()
    assert [t.number for t in finished] == list(range(trials))
    assert {t.state.name for t in finished} <= {"COMPLETE", "PRUNED"}
    assert result.worker_exit_codes == [0] * workers
    assert len({t.user_attrs["worker"] for t in finished}) == workers  # every process ran its share
    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == list(range(trials))
    assert {r.info.run_id for r in children} == {t.user_attrs["mlflow_run_id"] for t in finished}
    assert all(r.info.status == "FINISHED" for r in children)
    assert sum(result.summary["trials"].values()) == trials and result.summary["workers"] == workers


# One epoch per trial: these tests are about the workers and the storage; starting each worker process (torch,
# Lightning, MLflow imports) costs more than its trials.
ONE_EPOCH = {"budget": {"detectnet_v2.train.epochs": 1, "detectnet_v2.train.validate_every": 1}}


def test_two_workers_on_sqlite(kitti_root):
    storage = f"sqlite:///{kitti_root / 'mlruns' / 'optuna.db'}"
    result = run_sweep(detectnet_params(ONE_EPOCH), "detectnet_v2", 3, root=kitti_root, workers=2)
    assert result.storage == storage  # the default: <root>/mlruns/optuna.db
    _check_no_lost_or_duplicated_trials(result, storage, trials=3, workers=2)


def test_three_workers_on_postgresql(kitti_root, postgres_url):
    result = run_sweep(detectnet_params(ONE_EPOCH), "detectnet_v2", 3, root=kitti_root, workers=3,
                       storage=postgres_url, study_name="dn-postgres")
    _check_no_lost_or_duplicated_trials(result, postgres_url, trials=3, workers=3)
    assert (kitti_root / "sweeps" / "dn-postgres" / "trials.csv").is_file()


def test_trial_of_a_killed_worker_fails_and_is_retried(kitti_root):
    params = detectnet_params({"budget": {"detectnet_v2.train.epochs": 6, "detectnet_v2.train.validate_every": 1}},
                              heartbeat_interval=1, grace_period=2)
    study, info = prepare(params, "detectnet_v2", root=kitti_root)
    worker = multiprocessing.get_context("spawn").Process(
        target=_worker_main, args=(params.model_dump(mode="json"), info, str(kitti_root), 1, 0, 1))
    worker.start()
    deadline = time.monotonic() + 120
    running = []
    while not running and time.monotonic() < deadline and worker.is_alive():
        running = [t for t in study.get_trials() if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs]
        time.sleep(0.2)
    assert running, "the worker never started its trial"
    worker.kill()  # SIGKILL mid-training: no clean-up runs, as when a machine dies
    worker.join()
    time.sleep(params.sweep.grace_period + 1)  # let the last heartbeat go stale

    result = run_sweep(params, "detectnet_v2", 1, root=kitti_root)
    dead, retry = optuna.load_study(study_name=info.name, storage=info.storage).get_trials()
    assert dead.state.name == "FAIL" and retry.state.name in ("COMPLETE", "PRUNED")
    assert retry.system_attrs["failed_trial"] == dead.number and retry.params == dead.params
    client = mlflow.MlflowClient()
    dead_run = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and "worker lost" in dead_run.data.tags["error"]
    assert client.get_run(retry.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
    assert result.summary["trials"] == {"FAIL": 1, retry.state.name: 1}
