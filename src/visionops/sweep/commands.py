"""``visionops sweep MODEL``: an Optuna study over one model's training (click only at import)."""

from __future__ import annotations

import click

MODELS = ("detectnet_v2", "sparse4d")  # the same as visionops.sweep.space.MODELS, kept light for --help


@click.command("sweep")
@click.argument("model", type=click.Choice(MODELS))
@click.option("--trials", "-n", type=click.IntRange(min=1), default=10, show_default=True,
              help="Trials to run now (in total over all workers); a study that exists gets this many more.")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage (SQLAlchemy URL). Default: $VISIONOPS_SWEEP_STORAGE, else sweep.storage, else "
                   "sqlite:///<root>/mlruns/optuna.db. Several machines: postgresql+psycopg2://user:pw@host/db.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine, sharing the trials and the storage (CPU threads are split).")
@click.option("--study", "study_name", default=None, metavar="NAME",
              help="Study name (default: MODEL). Results go to sweeps/NAME/.")
@click.option("--no-progress", is_flag=True, help="No live progress bar (one line per trial is still printed).")
@click.pass_context
def sweep(ctx: click.Context, model: str, trials: int, storage: str | None, workers: int, study_name: str | None,
          no_progress: bool) -> None:
    """Tune MODEL's hyper-parameters with Optuna: every trial trains with a reduced budget and is scored on val.

    Search space, objective metric, direction, sampler seed (multivariate TPE), pruner (median or hyperband)
    and the reduced budget come from sweep.MODEL in params.yaml (-S overrides apply). Trials read the
    converted data (data/kitti for detectnet_v2; data/ovpkl, data/frames, data/anchors for sparse4d), so run
    `dvc repro convert` first. In MLflow each trial is a child run of the study's parent run
    (experiment MODEL); the parent holds the results. Results in sweeps/NAME/: best_params.yaml (dotted keys,
    ready for -S), trials.csv, trials.md, optimization_history.png, param_importances.png,
    intermediate_values.png.

    \b
    Examples:
      visionops sweep detectnet_v2 --trials 10
      visionops sweep sparse4d --trials 20 --workers 2
      visionops -S sweep.detectnet_v2.pruner=hyperband sweep detectnet_v2 --study dn-hyperband
      # several machines, one study (create the database once; each machine runs the same line):
      visionops sweep detectnet_v2 --trials 12 --workers 3 \\
          --storage postgresql+psycopg2://optuna:secret@db-host:5432/optuna --study dn-shared
      # apply the winner: the `dvc exp run -S ...` line at the top of sweeps/NAME/best_params.yaml
    """
    from visionops.cli import _load_params  # noqa: PLC0415
    from visionops.config import ConfigError  # noqa: PLC0415
    from visionops.sweep.progress import SweepProgress  # noqa: PLC0415
    from visionops.sweep.runner import run_sweep  # noqa: PLC0415
    from visionops.sweep.storage import StorageError  # noqa: PLC0415

    params = _load_params(ctx)
    metric = getattr(params.sweep, model).metric
    try:
        with SweepProgress(metric, enabled=not no_progress) as progress:
            result = run_sweep(params, model, trials, storage=storage, workers=workers, study_name=study_name,
                               progress=progress)
    except (ConfigError, StorageError, FileNotFoundError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    summary = result.summary
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary["trials"].items()))
    click.echo(f"study {result.study} ({result.storage}): {states}; {trials} trials with "
               f"{summary['workers']} worker(s) in {result.wall_seconds:.1f} s")
    if summary["best"] is None:
        click.echo("no trial completed: no best_params.yaml")
    else:
        best = summary["best"]
        click.echo(f"best: trial {best['number']}, {metric} = {best['value']:.4g} -> "
                   f"{result.folder / 'best_params.yaml'}")
    click.echo(f"MLflow parent run {result.parent_run_id} (experiment {model}); tables and plots in {result.folder}")
