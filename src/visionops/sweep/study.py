"""Creating (once) and loading a study: sampler, pruner, its fingerprint, and the MLflow parent run.

The launcher calls :func:`prepare_study` before any worker starts, so the schema and the study exist when K
workers (or machines) load it; creating is idempotent (``load_if_exists``). The study records, as user
attributes, the model, metric and fingerprint of its settings (continuing it with other settings is refused)
and the id of its MLflow parent run, so every worker on every machine nests its trial runs under the same run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from visionops.config import ConfigError, Params, digest, flatten
from visionops.sweep.space import check_space, fingerprint, sweep_section

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from visionops.config.sweep_params import ModelSweepParams

PARENT_RUN_ATTR = "mlflow_parent_run_id"


def build_sampler(cfg: ModelSweepParams, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Multivariate TPE seeded with ``seed + worker``: one worker reproduces a sweep exactly; parallel workers get
    different seeds, or their random start-up trials would all draw the same points."""
    import optuna  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: a running trial counts as a bad result, so parallel workers do not sample the same spot
        return optuna.samplers.TPESampler(seed=cfg.seed + worker, n_startup_trials=cfg.startup_trials,
                                          multivariate=True, constant_liar=True)


def build_pruner(cfg: ModelSweepParams) -> optuna.pruners.BasePruner:
    """Median (prune below the median of earlier trials at the same epoch) or Hyperband (successive halving
    brackets over epochs); ``none`` never prunes."""
    import optuna  # noqa: PLC0415

    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.min_epochs)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(cfg.min_epochs, 1), max_resource="auto",
                                              reduction_factor=cfg.reduction_factor)
    return optuna.pruners.NopPruner()


@dataclass(frozen=True)
class StudyInfo:
    """What workers need to join a prepared study (plain, picklable values)."""

    name: str
    model: str
    storage: str
    parent_run_id: str


def load(storage: Any, name: str, cfg: ModelSweepParams, worker: int = 0) -> optuna.Study:
    """The existing study ``name`` with this worker's sampler and the pruner."""
    import optuna  # noqa: PLC0415

    return optuna.load_study(study_name=name, storage=storage, sampler=build_sampler(cfg, worker),
                             pruner=build_pruner(cfg))


def create_or_load(storage: Any, name: str, params: Params, model: str) -> optuna.Study:
    """Create study ``name`` or load it when it exists; refuses a study made for another model or settings."""
    import optuna  # noqa: PLC0415

    cfg = sweep_section(params, model)
    check_space(params, model)
    study = optuna.create_study(study_name=name, storage=storage, direction=cfg.direction,
                                sampler=build_sampler(cfg), pruner=build_pruner(cfg), load_if_exists=True)
    expected = {"model": model, "metric": cfg.metric, "fingerprint": fingerprint(params, model)}
    attrs = study.user_attrs
    if "fingerprint" not in attrs:
        for key, value in expected.items():
            study.set_user_attr(key, value)
        return study
    if attrs.get("model") != model or attrs.get("fingerprint") != expected["fingerprint"]:
        raise ConfigError(
            f"study {name!r} exists with other settings (model {attrs.get('model')}, metric {attrs.get('metric')}; "
            f"its objective, budget, search space or base {model} params differ from sweep.{model} and params.yaml "
            "now), so its trials are not comparable with new ones. Pass --study NEW_NAME, or delete the old one: "
            f"optuna delete-study --study-name {name} --storage URL")
    if study.direction.name.lower() != cfg.direction:
        raise ConfigError(f"study {name!r} {study.direction.name.lower()}s; sweep.{model}.direction says "
                          f"{cfg.direction}: pass --study NEW_NAME")
    return study


def ensure_parent_run(study: optuna.Study, params: Params, model: str, storage_label: str) -> str:
    """The id of the study's MLflow parent run (experiment ``<model>``), creating it on first use.

    The run is created through the client, not ``mlflow.start_run``: it stays open while trials run as its
    children (``mlflow.parentRunId``), without being anybody's active run.
    """
    import mlflow  # noqa: PLC0415
    from mlflow.entities import Param  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415

    prefix = params.tracking.experiment_prefix
    tracking.setup(prefix=prefix)
    client = mlflow.MlflowClient()
    existing = study.user_attrs.get(PARENT_RUN_ATTR)
    if existing:
        try:
            run = client.get_run(existing)
        except mlflow.exceptions.MlflowException:
            run = None  # a different MLflow store than the study's first run: start a parent here
        if run is not None:
            if run.info.status != "RUNNING":
                client.update_run(existing, status="RUNNING")  # more trials are coming
            return existing
    cfg = sweep_section(params, model)
    experiment_id = tracking.ensure_experiment(tracking.experiment_name(model, prefix), family=model)
    tags = tracking.stage_tags("sweep", digest(cfg), {
        "optuna.study": study.study_name, "optuna.storage": storage_label, "sweep.model": model,
        "sweep.metric": cfg.metric, "sweep.direction": cfg.direction,
        "visionops.run_kind": "sweep"})  # beside the pipeline runs' "pipeline" and the stages' "stage"
    run = client.create_run(experiment_id, run_name=f"sweep-{study.study_name}", tags=tags)
    flat = {f"sweep.{model}.{k}": str(v)[:6000] for k, v in flatten(cfg.model_dump(mode="json")).items()}
    items = [Param(k, v) for k, v in flat.items()]
    for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run.info.run_id, params=items[i : i + 100])
    study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
    # Two launchers that found no parent at the same moment both created one: keep the winner's, drop ours.
    winner = study.user_attrs.get(PARENT_RUN_ATTR)
    if winner != run.info.run_id:
        client.delete_run(run.info.run_id)
    return winner
