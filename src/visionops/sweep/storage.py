"""Where studies live: the storage URL, opening it with heartbeats, and retrying trials whose worker died.

* URL: ``--storage`` > ``VISIONOPS_SWEEP_STORAGE`` > ``sweep.storage`` > ``sqlite:///<root>/mlruns/optuna.db``
  (next to the MLflow store; the root as :func:`visionops.tracking.project_root`, so a DVC temp clone writes
  into the real repository). Any SQLAlchemy URL works; PostgreSQL must say ``postgresql+psycopg2://``
  because SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3.
* Heartbeats: every running trial writes one every ``sweep.heartbeat_interval`` s. Before each new trial a
  worker fails the trials whose heartbeat is older than ``sweep.grace_period`` (their worker was killed or
  its machine died), marks their MLflow runs FAILED and re-queues them (``sweep.max_retry`` times).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from visionops.config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from visionops.config.sweep_params import SweepParams

ENV_STORAGE = "VISIONOPS_SWEEP_STORAGE"


class StorageError(RuntimeError):
    """The study storage cannot be opened; the message names the (password-masked) URL and the fix."""


def default_storage(root: Path) -> str:
    return f"sqlite:///{Path(root).resolve() / 'mlruns' / 'optuna.db'}"


def storage_url(cli: str | None, params: SweepParams, root: Path) -> str:
    """The storage URL by precedence: ``--storage``, ``$VISIONOPS_SWEEP_STORAGE``, ``sweep.storage``, default."""
    url = cli or os.environ.get(ENV_STORAGE) or params.storage or default_storage(root)
    if "://" not in url:
        raise ConfigError(f"sweep storage {url!r} is not a SQLAlchemy URL; use e.g. sqlite:////abs/path/optuna.db "
                          "or postgresql+psycopg2://user:password@host:5432/dbname")
    return url


def mask(url: str) -> str:
    """``url`` with the password replaced by ``***`` (for messages, tags and logs)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _stale_callback(max_retry: int):
    """Mark the dead trial's MLflow run FAILED, then re-queue the trial with the same parameters."""
    import optuna  # noqa: PLC0415

    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            _fail_mlflow_run(run_id, f"worker lost: no heartbeat from trial {trial.number} for the grace period")
        retry(study, trial)

    return on_stale


def _fail_mlflow_run(run_id: str, reason: str) -> None:
    import mlflow  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        client = mlflow.MlflowClient()
        client.set_tag(run_id, "error", reason)
        client.set_tag(run_id, "optuna.state", "FAIL")
        client.set_terminated(run_id, status="FAILED")
    except MlflowException:
        pass  # the run is gone (deleted store, other tracking server): the study's own record is what counts


def open_storage(url: str, params: SweepParams, *, attempts: int = 3) -> optuna.storages.RDBStorage:
    """An :class:`~optuna.storages.RDBStorage` with heartbeats and stale-trial retry, or :class:`StorageError`.

    A server URL gets ``pool_pre_ping`` so a connection the server dropped between two trials is replaced.
    Workers that create the schema of an empty database at the same moment can collide on PostgreSQL
    (``UniqueViolation``): that is retried ``attempts`` times.
    """
    import optuna  # noqa: PLC0415
    import sqlalchemy.exc  # noqa: PLC0415
    from optuna.storages import RDBStorage  # noqa: PLC0415

    engine_kwargs = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                # heartbeats and their retry callback are "experimental" in Optuna 5 (and the documented way)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=params.heartbeat_interval,
                                  grace_period=params.grace_period,
                                  heartbeat_stale_trial_callback=_stale_callback(params.max_retry))
        except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError
            driver = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "?"
            hint = (" (a bare postgresql:// URL means psycopg 3 under SQLAlchemy 2: write postgresql+psycopg2://)"
                    if url.startswith("postgresql://") else "")
            raise StorageError(f"sweep storage {mask(url)}: database driver {driver!r} is not installed{hint}; "
                               "install it (pip install psycopg2-binary) or use another URL") from None
        except sqlalchemy.exc.IntegrityError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))  # another worker is creating the tables right now
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError) as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StorageError(f"sweep storage {mask(url)}: cannot open it ({detail}). Check the host, port, "
                               "user, password and database name, that the server is running, or pass "
                               "--storage sqlite:////abs/path/optuna.db") from None
    raise AssertionError("unreachable")  # pragma: no cover
