"""MLflow tracking core: where the store lives, the experiments, and one run per pipeline stage.

* Store: ``sqlite:///<root>/mlruns/mlflow.db`` with artifacts under ``<root>/mlruns/artifacts/``.
  ``root`` is ``DVC_ROOT`` when set (DVC's queued/--temp experiments run in a throw-away clone and
  set it to the real repository, so their runs land in the real store), else the git top level, else
  the current folder. ``MLFLOW_TRACKING_URI`` overrides the whole thing (e.g. a shared server).
* Experiments (``data``, ``sparse4d``, ``detectnet_v2``) are created up front with an *absolute*
  artifact location, because MLflow freezes the location at creation time and a temp clone would
  otherwise own it.
* :func:`stage_run` opens one run per stage, tags it with git commit/dirty flag, ``DVC_STAGE``,
  ``DVC_EXP_NAME`` and a params digest, and logs the stage's params section flattened.
* *Pipeline runs*: every stage run is the child of one pipeline run per model family and pipeline
  revision, which holds the headline params and metrics so that MLflow's compare view puts two variants
  side by side. DVC runs each stage in its own process, so nothing is handed from stage to stage: each
  stage computes the same :func:`pipeline_key` (git commit + a hash of the uncommitted code changes, the
  family's params digest, ``DVC_EXP_NAME``), finds the pipeline run tagged with it or creates it. Stages
  log headline numbers with :func:`log_headline_metrics`. Stages DVC does not run (restored from its
  run-cache, or already up to date) get no child run; the last DVC stage, ``pipeline_runs``
  (:mod:`visionops.pipeline_completion`), names them on the pipeline run and copies their numbers from
  ``metrics/*.json`` (:mod:`visionops.headline` picks them).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionops import __version__
from visionops.config import digest, flatten
from visionops.headline import (  # noqa: F401  (re-exported: stages call tracking.headline_from_metrics ...)
    HEADLINE_METRICS,
    data_headline,
    headline_from_files,
    headline_from_metrics,
    headline_params,
    numeric,
)

if TYPE_CHECKING:  # pragma: no cover
    import mlflow
    from pydantic import BaseModel

EXPERIMENTS = ("data", "sparse4d", "detectnet_v2")
MLFLOW_PARAM_MAX_CHARS = 6000  # MLflow rejects longer param values
# MLflow 3's UI opens an experiment without this tag on its GenAI trace pages; with it, on the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def project_root() -> Path:
    """Repository root: ``DVC_ROOT`` if set, else ``git rev-parse --show-toplevel``, else the cwd."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    return _git_toplevel(Path.cwd()) or Path.cwd().resolve()


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _git_toplevel(cwd: Path) -> Path | None:
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    return Path(top).resolve() if top else None


def mlruns_dir(root: Path | None = None) -> Path:
    return (root or project_root()) / "mlruns"


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the sqlite store under ``<root>/mlruns``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{mlruns_dir(root) / 'mlflow.db'}"


def artifact_location(experiment: str, root: Path | None = None) -> str | None:
    """Absolute artifact URI for a new experiment (None for a remote server: it decides)."""
    uri = tracking_uri(root)
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    return (mlruns_dir(root) / "artifacts" / experiment).resolve().as_uri()


def experiment_name(family: str, prefix: str = "") -> str:
    return f"{prefix}{family}"


@functools.lru_cache(maxsize=8)
def _configured(uri: str) -> str:
    import mlflow  # noqa: PLC0415

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def setup(root: Path | None = None, prefix: str = "") -> str:
    """Point MLflow at the project store and make sure every experiment exists; returns the URI."""
    uri = _configured(tracking_uri(root))
    for family in EXPERIMENTS:
        ensure_experiment(experiment_name(family, prefix), root, family=family)
    return uri


def ensure_experiment(name: str, root: Path | None = None, *, family: str | None = None) -> str:
    """Experiment id of ``name``, creating it with an absolute artifact location if missing."""
    import mlflow  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    _configured(tracking_uri(root))
    client = mlflow.MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        if EXPERIMENT_KIND_TAG not in existing.tags:  # a store from before the tag was set
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return existing.experiment_id
    location = artifact_location(name.replace("/", "_"), root)
    tags = {"visionops.family": family or name, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
    try:
        return client.create_experiment(name, artifact_location=location, tags=tags)
    except MlflowException:
        # Another process created it between our lookup and create (parallel stages/workers).
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


IGNORED_FOR_DIRTY = frozenset({"dvc.lock"})
IGNORED_DIRS_FOR_DIRTY = ("metrics/", "plots/")


def git_state(root: Path | None = None) -> dict[str, str]:
    """Tags describing the code: commit, branch and whether tracked files differ from it."""
    root = root or project_root()
    commit = _git(["rev-parse", "HEAD"], root)
    if commit is None:
        return {"git.commit": "none"}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root) or ""
    # dvc.lock is rewritten by `dvc repro` after every stage, and the git-tracked metrics and plots
    # (`cache: false` outs) by the stages that own them, so from the second stage on they differ from HEAD;
    # that is DVC's bookkeeping and the pipeline's results, not a code change, and would flag every
    # pipeline run as dirty.
    changed = [line.split(maxsplit=1)[-1] for line in status.splitlines()]
    dirty = [path for path in changed
             if path not in IGNORED_FOR_DIRTY and not path.startswith(IGNORED_DIRS_FOR_DIRTY)]
    return {
        "git.commit": commit,
        "git.branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], root) or "",
        "git.dirty": "true" if dirty else "false",
    }


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MLFLOW_PARAM_MAX_CHARS else text[: MLFLOW_PARAM_MAX_CHARS - 3] + "..."


def stage_tags(stage: str, params_digest: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    tags = {
        "visionops.version": __version__,
        "visionops.stage": stage,
        "dvc.stage": os.environ.get("DVC_STAGE", stage),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "params.digest": params_digest,
        **git_state(),
    }
    tags.update(extra or {})
    return tags


# --------------------------------------------------------------------------------------------------
# pipeline runs: one per model family and pipeline revision, every stage run a child of it
# --------------------------------------------------------------------------------------------------

RUN_KIND_TAG = "visionops.run_kind"  # "pipeline" or "stage"
PIPELINE_KEY_TAG = "visionops.pipeline_key"
RESTORED_STAGES_TAG = "visionops.restored_stages"
RESTORED_FROM_TAG = "visionops.restored_metrics_from"

# Top-level params sections owned by one model family: a change there starts a new pipeline run of that
# family only (a DetectNet_v2 learning rate must not split the Sparse4D runs).
FAMILY_SECTIONS = {"sparse4d": ("sparse4d",), "detectnet_v2": ("detectnet_v2", "prune")}
DATA_SECTIONS = ("data", "convert")
# Sections that say how results are recorded or searched, not what a pipeline computes.
NEUTRAL_SECTIONS = ("tracking", "sweep")
# Files a pipeline rewrites while it runs, and params.yaml (its values are in the params digest already):
# none of them is a code change.
NOT_CODE = ("dvc.lock", "params.yaml", "metrics", "plots", "mlruns", "**/.gitignore")


@dataclass(frozen=True)
class PipelineRun:
    """The pipeline run of one model family for the current code, params and DVC experiment."""

    run_id: str
    experiment_id: str
    family: str
    key: str
    created: bool


# The pipeline run of each open stage_run (innermost last; None for a stage without one).
_OPEN_PIPELINES: list[PipelineRun | None] = []


def params_as_dict(params: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    """The whole params as plain data: the given object, else ``params.yaml`` of the working directory."""
    if params is not None:
        return params.model_dump(mode="json") if hasattr(params, "model_dump") else dict(params)
    from visionops.config import ConfigError, load_params, read_params_file  # noqa: PLC0415

    path = Path("params.yaml")
    if not path.is_file():
        return {}
    try:
        return load_params(path).model_dump(mode="json")  # with defaults filled in, as the stages see them
    except ConfigError:
        # An invalid file fails the stage with its own clear error; the key still follows the raw values.
        try:
            return read_params_file(path)
        except ConfigError:
            return {}


def family_params(family: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params sections a family's results depend on (the data sections, plus its own)."""
    if family == "data":
        return {k: params[k] for k in DATA_SECTIONS if k in params}
    others = {section for fam, sections in FAMILY_SECTIONS.items() if fam != family for section in sections}
    other_families = set(FAMILY_SECTIONS) - {family}
    out = {}
    for key, value in params.items():
        if key in others or key in NEUTRAL_SECTIONS:
            continue
        # shared sections with one sub-section per model (profile.sparse4d, profile.detectnet_v2, ...)
        if isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in other_families}
        out[key] = value
    return out


def code_state(cwd: Path | None = None) -> dict[str, str]:
    """Commit of the code that runs (the working directory's repository) and a hash of its uncommitted changes.

    In a DVC temp clone this is the clone, not ``DVC_ROOT``: the clone's tree is what the stage executes.
    """
    cwd = cwd or Path.cwd()
    top = _git_toplevel(cwd)
    commit = _git(["rev-parse", "HEAD"], top) if top else None
    if top is None or commit is None:
        return {"commit": "none", "changes": ""}
    diff = _git(["diff", "HEAD", "--no-ext-diff", "--", ".", *(f":(exclude,glob){p}" for p in NOT_CODE)], top) or ""
    return {"commit": commit, "changes": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else ""}


def pipeline_key(family: str, params: BaseModel | Mapping[str, Any] | None = None,
                 cwd: Path | None = None) -> tuple[str, dict[str, str]]:
    """``(key, parts)``: what every stage of one pipeline execution of ``family`` computes identically.

    The parts are the commit, the hash of uncommitted code changes, the family's params digest and
    ``DVC_EXP_NAME``; the key is their hash. Stages run as separate processes under ``dvc repro``, so this
    shared value, stored as a tag, is how they find the same pipeline run.
    """
    parts = {**code_state(cwd), "params": digest(family_params(family, params_as_dict(params))),
             "exp_name": os.environ.get("DVC_EXP_NAME", ""), "family": family}
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20], parts


def _find_pipeline_runs(client, experiment_id: str, key: str) -> list:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{key}'",
                              max_results=50)
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def pipeline_run(family: str, params: BaseModel | Mapping[str, Any] | None = None, *,
                 experiment_prefix: str = "") -> PipelineRun:
    """Find or create the pipeline run of ``family`` for the current commit, code changes, params and experiment.

    Args:
        family: experiment family (``data``, ``sparse4d``, ``detectnet_v2``).
        params: the whole params (``Params`` or its dict); default: ``params.yaml`` of the working directory
            (which is what DVC hands its stages, ``dvc exp run -S`` overrides included).
    A new pipeline run gets the headline params, the family's params flattened and tags (commit, dirty,
    DVC experiment, params digest) and is left FINISHED; each stage marks it RUNNING while it runs.
    """
    import mlflow  # noqa: PLC0415
    from mlflow.entities import Param  # noqa: PLC0415

    setup(prefix=experiment_prefix)
    client = mlflow.MlflowClient()
    experiment_id = ensure_experiment(experiment_name(family, experiment_prefix), family=family)
    data = params_as_dict(params)
    key, parts = pipeline_key(family, data)
    found = _find_pipeline_runs(client, experiment_id, key)
    if found:
        return PipelineRun(found[0].info.run_id, experiment_id, family, key, created=False)
    exp_name = parts["exp_name"]
    dirty = "true" if parts["changes"] else "false"
    label = exp_name or f"{parts['commit'][:7]}{'-dirty' if parts['changes'] else ''}-{parts['params'][:6]}"
    tags = {
        RUN_KIND_TAG: "pipeline", PIPELINE_KEY_TAG: key, "visionops.family": family,
        "visionops.version": __version__, "git.commit": parts["commit"], "git.dirty": dirty,
        "git.changes_digest": parts["changes"], "dvc.exp_name": exp_name, "params.digest": parts["params"],
        "mlflow.note.content": (f"Pipeline run of {family}: headline params and metrics of this code, params "
                                f"and DVC experiment; every stage is a child run. Key parts: {parts}"),
    }
    run = client.create_run(experiment_id, run_name=f"{family} {label}", tags=tags)
    # the headline params under short names, then every param the family depends on (the compare view's
    # "show diff only" finds whatever else two variants changed)
    flat = {**{k: _param_value(v) for k, v in headline_params(family, data).items()},
            **{k: _param_value(v) for k, v in flatten(family_params(family, data)).items()}}
    items = [Param(k, v) for k, v in flat.items()]
    for i in range(0, len(items), 100):  # MLflow caps one batch at 100 params
        client.log_batch(run.info.run_id, params=items[i : i + 100])
    client.set_terminated(run.info.run_id, "FINISHED")
    # Two executions with the same key (parallel queue workers) may both create one: the oldest wins.
    found = _find_pipeline_runs(client, experiment_id, key)
    winner = found[0].info.run_id if found else run.info.run_id
    if winner != run.info.run_id:
        client.delete_run(run.info.run_id)
    return PipelineRun(winner, experiment_id, family, key, created=winner == run.info.run_id)


def current_pipeline_run() -> PipelineRun | None:
    """The pipeline run of the innermost open :func:`stage_run` (None outside one, or when it has none)."""
    return _OPEN_PIPELINES[-1] if _OPEN_PIPELINES else None


def log_headline_metrics(metrics: Mapping[str, Any], *, run_id: str | None = None) -> bool:
    """Log headline numbers (HOTA, mAP, params, latency, ...) on the pipeline run of the open stage.

    Non-numeric and ``None`` values are skipped. Returns False (and logs nothing) when there is no pipeline
    run: outside :func:`stage_run`, or in a stage opened with ``pipeline=False`` or an explicit parent (a sweep
    trial). ``run_id`` targets a given run instead.
    """
    import mlflow  # noqa: PLC0415
    from mlflow.entities import Metric  # noqa: PLC0415

    if run_id is None:
        current = current_pipeline_run()
        if current is None:
            return False
        run_id = current.run_id
    now = int(time.time() * 1000)
    batch = [Metric(name, value, now, 0) for name, value in numeric(metrics).items()]
    for i in range(0, len(batch), 1000):
        mlflow.MlflowClient().log_batch(run_id, metrics=batch[i : i + 1000])
    return bool(batch)


@contextlib.contextmanager
def stage_run(
    stage: str,
    family: str,
    params: BaseModel | Mapping[str, Any],
    *,
    params_prefix: str = "",
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    experiment_prefix: str = "",
    log_system_metrics: bool = False,
    pipeline: bool = True,
    pipeline_params: BaseModel | Mapping[str, Any] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open an MLflow run for one pipeline stage, as a child of the family's pipeline run.

    Args:
        stage: stage name (``download``, ``convert``...); also the default run name.
        family: experiment family, one of :data:`EXPERIMENTS`.
        params: the stage's params section; logged flattened (``synthetic.frames`` ...).
        params_prefix: prepended to every param key (e.g. ``data.``).
        parent_run_id: make this a child of that run (a sweep trial) instead of the pipeline run.
        pipeline: False: a plain top-level run, no pipeline run.
        pipeline_params: the whole params the stage runs with (``Params``), for the pipeline run's key and
            headline params; default: ``params.yaml`` of the working directory, which is what DVC hands its
            stages. Pass it when the params carry ``-S`` overrides of the ``visionops`` command line.
    Yields:
        The active MLflow run. On an exception the run ends FAILED with the error as a tag, and the
        exception propagates; the pipeline run ends FAILED too (KILLED on Ctrl-C), until a stage succeeds.
        :func:`log_headline_metrics` logs to the pipeline run meanwhile.
    """
    import mlflow  # noqa: PLC0415

    setup(prefix=experiment_prefix)
    experiment_id = ensure_experiment(experiment_name(family, experiment_prefix), family=family)
    data = params.model_dump(mode="json") if hasattr(params, "model_dump") else dict(params)
    all_tags = stage_tags(stage, digest(data), tags)
    all_tags[RUN_KIND_TAG] = "stage"
    pipe = None
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    elif pipeline:
        pipe = pipeline_run(family, pipeline_params, experiment_prefix=experiment_prefix)
        all_tags["mlflow.parentRunId"] = pipe.run_id
        all_tags[PIPELINE_KEY_TAG] = pipe.key
        mlflow.MlflowClient().update_run(pipe.run_id, status="RUNNING")
    started = time.perf_counter()
    status = "FINISHED"
    _OPEN_PIPELINES.append(pipe)
    try:
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name or stage,
            tags=all_tags,
            log_system_metrics=log_system_metrics,
        ) as run:
            flat = {f"{params_prefix}{k}": _param_value(v) for k, v in flatten(data).items()}
            # MLflow caps one batch at 100 params.
            items = list(flat.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
            try:
                yield run
            except BaseException as exc:
                status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
                mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
                mlflow.log_metric("stage_seconds", time.perf_counter() - started)
                mlflow.end_run(status=status)
                raise
            mlflow.log_metric("stage_seconds", time.perf_counter() - started)
    finally:
        _OPEN_PIPELINES.pop()
        if pipe is not None:
            mlflow.MlflowClient().set_terminated(pipe.run_id, status)
