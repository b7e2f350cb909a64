"""Running a sweep: prepare the study once, run K worker processes against its storage, then write the results.

``--workers K`` starts K processes (``spawn``: each opens its own database connections and imports torch
cleanly) that share the N trials (worker i runs N // K, the first N % K one more), so exactly N trials are
asked for. With K = 1 the trials run in this process. Other machines join the same study by running the same
command with the same ``--storage`` and ``--study``; each machine's launcher rewrites the results folder
from the whole study when its own workers are done.

Only numerical divergence (``FloatingPointError``: a NaN/inf loss or metric) fails a trial and lets the sweep go
on; any other error (missing data, a bug) stops the worker, because every further trial would fail the same way.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionops.config import Params
from visionops.sweep import results
from visionops.sweep.space import check_model, sweep_section
from visionops.sweep.storage import mask, open_storage, storage_url
from visionops.sweep.study import StudyInfo, create_or_load, ensure_parent_run, load

if TYPE_CHECKING:  # pragma: no cover
    import optuna


@dataclass
class SweepResult:
    """What :func:`run_sweep` did."""

    study: str
    storage: str
    folder: Path
    parent_run_id: str
    summary: dict[str, Any]
    wall_seconds: float
    worker_exit_codes: list[int] = field(default_factory=list)


def split_trials(total: int, workers: int) -> list[int]:
    """``total`` trials over ``workers`` as evenly as possible (no worker gets zero unless total < workers)."""
    base, extra = divmod(total, workers)
    return [base + (1 if i < extra else 0) for i in range(workers) if base + (1 if i < extra else 0) > 0]


def _threads_per_worker(workers: int) -> int:
    # K workers each running torch with every core would oversubscribe the CPU (spin-waiting OpenMP threads
    # made small ops ~50x slower on a shared 2-core machine); split the cores instead.
    return max(1, (os.cpu_count() or 1) // workers)


def quiet_libraries() -> None:
    """Keep the sweep's output to one line per trial: Optuna's and Lightning's per-trial INFO lines (seed set,
    GPU available, study loaded...) repeated N times would bury it; warnings still show."""
    import logging  # noqa: PLC0415

    import lightning.pytorch  # noqa: F401, PLC0415 - importing it sets its loggers to INFO: import first, then quiet
    import optuna  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_worker(params_data: dict[str, Any], info: StudyInfo, root: str, n_trials: int, worker: int,
               threads: int | None = None, callbacks: tuple[Callable, ...] = ()) -> None:
    """Run ``n_trials`` trials of the prepared study ``info`` (in this process). Entry point of every worker."""
    import torch  # noqa: PLC0415

    from visionops.sweep.trial import make_objective  # noqa: PLC0415

    if threads:
        torch.set_num_threads(threads)
    quiet_libraries()
    params = Params.model_validate(params_data)
    cfg = sweep_section(params, info.model)
    storage = open_storage(info.storage, params.sweep)
    study = load(storage, info.name, cfg, worker)
    objective = make_objective(params, info, Path(root), worker)
    study.optimize(objective, n_trials=n_trials, catch=(FloatingPointError,), callbacks=list(callbacks),
                   gc_after_trial=True)


def _worker_main(params_data: dict[str, Any], info: StudyInfo, root: str, n_trials: int, worker: int,
                 threads: int) -> None:
    run_worker(params_data, info, root, n_trials, worker, threads)


def prepare(params: Params, model: str, *, root: Path, storage: str | None = None,
            study_name: str | None = None) -> tuple[optuna.Study, StudyInfo]:
    """Open the storage, create or load the study and its MLflow parent run (before any worker starts)."""
    check_model(model)
    url = storage_url(storage, params.sweep, root)
    study = create_or_load(open_storage(url, params.sweep), study_name or model, params, model)
    parent = ensure_parent_run(study, params, model, mask(url))
    return study, StudyInfo(name=study.study_name, model=model, storage=url, parent_run_id=parent)


def run_sweep(params: Params, model: str, trials: int, *, root: Path | None = None, storage: str | None = None,
              workers: int = 1, study_name: str | None = None,
              progress: Callable[[optuna.Study, int, int], None] | None = None) -> SweepResult:
    """Run ``trials`` more trials of study ``study_name`` (default: the model's name) with ``workers`` processes.

    Args:
        params: the base params (``params.yaml`` + ``-S``); ``sweep.<model>`` holds the sweep settings.
        model: ``detectnet_v2`` or ``sparse4d``.
        root: repository root: data under ``root/data``, results under ``root/<sweep.output_dir>/<study>``,
            default storage ``root/mlruns/optuna.db``; default :func:`visionops.tracking.project_root`.
        progress: called as ``progress(study, first_new_trial_number, trials)`` after each finished trial (one
            worker) or about every second (several workers).
    Raises:
        ConfigError: unknown model, bad search-space entry, a study made with other settings.
        StorageError: the storage URL cannot be opened.
        RuntimeError: a worker process failed (its exit code is in the message); results are still written.
    """
    from visionops import tracking  # noqa: PLC0415

    if trials < 1 or workers < 1:
        raise ValueError(f"--trials and --workers must be >= 1, got trials={trials}, workers={workers}")
    root = Path(root or tracking.project_root()).resolve()
    quiet_libraries()
    started = time.perf_counter()
    study, info = prepare(params, model, root=root, storage=storage, study_name=study_name)
    first = len(study.get_trials(deepcopy=False))
    shares = split_trials(trials, workers)
    data = params.model_dump(mode="json")
    codes: list[int] = []
    try:
        if len(shares) == 1:
            callbacks = (lambda s, _t: progress(s, first, trials),) if progress else ()
            run_worker(data, info, str(root), shares[0], 0, callbacks=callbacks)
        else:
            codes = _run_processes(data, info, root, shares, study, first, trials, progress)
    except BaseException as exc:
        _close_parent(info.parent_run_id, exc)
        raise
    wall = time.perf_counter() - started
    cfg = sweep_section(params, model)
    folder = root / params.sweep.output_dir / info.name
    study = load(open_storage(info.storage, params.sweep), info.name, cfg)  # fresh view of every worker's trials
    summary = results.write_results(study, cfg, model, folder, mask(info.storage),
                                    extra={"wall_seconds": round(wall, 2), "workers": len(shares),
                                           "trials_this_run": trials})
    results.log_to_parent(info.parent_run_id, folder, summary, cfg.metric)
    failed = [(i, c) for i, c in enumerate(codes) if c != 0]
    if failed:
        raise RuntimeError(f"sweep workers failed (worker, exit code): {failed}; their output is above. Results "
                           f"of the trials that ran are in {folder}")
    return SweepResult(study=info.name, storage=mask(info.storage), folder=folder, parent_run_id=info.parent_run_id,
                       summary=summary, wall_seconds=wall, worker_exit_codes=codes)


def _close_parent(run_id: str, exc: BaseException) -> None:
    """End the parent run when the sweep stops on an error (or Ctrl-C), saying why; the next sweep of the study
    reopens it."""
    import mlflow  # noqa: PLC0415

    client = mlflow.MlflowClient()
    client.set_tag(run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
    client.set_terminated(run_id, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")


def _run_processes(data: dict[str, Any], info: StudyInfo, root: Path, shares: list[int], study: optuna.Study,
                   first: int, trials: int, progress: Callable | None) -> list[int]:
    """Start one process per share, poll the study for the progress display, return the exit codes."""
    context = multiprocessing.get_context("spawn")
    threads = _threads_per_worker(len(shares))
    processes = [context.Process(target=_worker_main, args=(data, info, str(root), n, i, threads),
                                 name=f"visionops-sweep-{i}") for i, n in enumerate(shares)]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            for process in processes:
                process.join(timeout=1.0 / len(processes))
            if progress:
                progress(study, first, trials)
    except BaseException:
        # Ctrl-C (or any error here): stop our workers; their running trials end FAIL via the heartbeat
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=30)
        raise
    if progress:
        progress(study, first, trials)
    return [p.exitcode if p.exitcode is not None else -1 for p in processes]
