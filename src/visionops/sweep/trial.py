"""One trial = one MLflow child run of the study's parent run, around the model's objective.

The nested-run pattern is written here instead of optuna-integration's ``MLflowCallback`` (deprecated, to be
removed in Optuna 6): the run is opened *before* training, so the Lightning logger writes the trial's curves
into it, and it is closed with the trial's outcome:

* COMPLETE: run FINISHED, metric ``objective`` (= the trial's value), tag ``optuna.state=COMPLETE``;
* PRUNED: run FINISHED with ``optuna.state=PRUNED`` and ``pruned_at_epoch`` (stopping a bad configuration
  early is the sweep working, not a failure);
* FAIL (e.g. a diverged loss): run FAILED with the error as a tag, as every pipeline stage.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from visionops.sweep.objectives import OBJECTIVES
from visionops.sweep.space import suggest, sweep_section, trial_params

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from visionops.config import Params
    from visionops.sweep.study import StudyInfo


def make_objective(params: Params, info: StudyInfo, root: Path, worker: int = 0) -> Callable[[optuna.Trial], float]:
    """The function ``study.optimize`` calls: sample, build the trial's params, train inside a child run."""
    import mlflow  # noqa: PLC0415
    import optuna  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415

    cfg = sweep_section(params, info.model)
    train = OBJECTIVES[info.model]

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, cfg.space)
        trial_cfg = trial_params(params, info.model, values)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}:{worker}")
        tags = {"optuna.study": info.name, "optuna.trial": str(trial.number), "sweep.model": info.model,
                "sweep.metric": cfg.metric}
        started = time.perf_counter()
        pruned: optuna.TrialPruned | None = None
        with tracking.stage_run("sweep_trial", info.model, getattr(trial_cfg, info.model),
                                params_prefix=f"{info.model}.", run_name=f"{info.name}-trial-{trial.number:03d}",
                                tags=tags, parent_run_id=info.parent_run_id,
                                experiment_prefix=params.tracking.experiment_prefix) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            try:
                value = train(trial_cfg, root, trial, cfg.metric, run.info.run_id)
            except optuna.TrialPruned as exc:
                pruned = exc
                # Lightning's logger marked the run FAILED when the exception left fit(); the stage run ends it
                # FINISHED below, tagged PRUNED.
                mlflow.set_tag("optuna.state", "PRUNED")
                last = trial.study._storage.get_trial(trial._trial_id).last_step
                if last is not None:
                    mlflow.log_metric("pruned_at_epoch", last)
            else:
                mlflow.log_metric("objective", value)
                mlflow.set_tag("optuna.state", "COMPLETE")
            mlflow.log_metric("trial_seconds", time.perf_counter() - started)
        if pruned is not None:
            raise pruned
        return value

    return objective
