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
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionops import __version__
from visionops.config import digest, flatten

if TYPE_CHECKING:  # pragma: no cover
    import mlflow
    from pydantic import BaseModel

EXPERIMENTS = ("data", "sparse4d", "detectnet_v2")
MLFLOW_PARAM_MAX_CHARS = 6000  # MLflow rejects longer param values


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
        return existing.experiment_id
    location = artifact_location(name.replace("/", "_"), root)
    try:
        return client.create_experiment(name, artifact_location=location, tags={"visionops.family": family or name})
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
) -> Iterator[mlflow.ActiveRun]:
    """Open an MLflow run for one pipeline stage.

    Args:
        stage: stage name (``download``, ``convert``...); also the default run name.
        family: experiment family, one of :data:`EXPERIMENTS`.
        params: the stage's params section; logged flattened (``synthetic.frames`` ...).
        params_prefix: prepended to every param key (e.g. ``data.``).
        parent_run_id: make this a child run (pipeline run / sweep trial).
    Yields:
        The active MLflow run. On an exception the run ends FAILED with the error as a tag, and the
        exception propagates.
    """
    import mlflow  # noqa: PLC0415

    setup(prefix=experiment_prefix)
    experiment_id = ensure_experiment(experiment_name(family, experiment_prefix), family=family)
    data = params.model_dump(mode="json") if hasattr(params, "model_dump") else dict(params)
    all_tags = stage_tags(stage, digest(data), tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    started = time.perf_counter()
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
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            mlflow.log_metric("stage_seconds", time.perf_counter() - started)
            mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        mlflow.log_metric("stage_seconds", time.perf_counter() - started)
