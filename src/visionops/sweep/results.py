"""A study's results on disk and in its MLflow parent run.

``<root>/sweeps/<study>/`` (swapped into place as a whole, so it always shows one consistent state):

* ``best_params.yaml``: the best trial's sampled values as dotted keys, each line ready for ``-S key=value``
  (the header comment has the full ``dvc exp run -S ...`` line); the reduced ``budget`` is left out on purpose;
* ``trials.csv`` and ``trials.md``: one row per trial (state, value, epoch it was pruned at, seconds, params,
  worker, MLflow run);
* ``optimization_history.png``, ``param_importances.png``, ``intermediate_values.png``: Optuna's matplotlib
  plots (Agg backend). Importances need two finished trials whose params vary; when they cannot be computed
  the reason goes to ``summary.json`` instead of a plot.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from visionops import atomic
from visionops.sweep.space import format_value, override_args

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from visionops.config.sweep_params import ModelSweepParams

PLOTS = ("optimization_history", "param_importances", "intermediate_values")


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)."""
    out: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best COMPLETE trial, or None when none completed."""
    import optuna  # noqa: PLC0415

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return study.best_trial if done else None


def best_params_text(study: optuna.Study, cfg: ModelSweepParams, model: str, storage_label: str) -> str | None:
    """``best_params.yaml``: a comment header (how to apply it) and ``dotted.key: value`` lines."""
    best = best_trial(study)
    if best is None:
        return None
    args = " ".join(f"-S {arg}" for arg in override_args(best.params))
    budget = ", ".join(override_args(cfg.budget)) or "none"
    header = [
        f"Best trial of Optuna study '{study.study_name}' ({storage_label}):",
        f"trial {best.number}, {cfg.metric} = {best.value:.6g} ({cfg.direction}).",
        f"Trials were trained with a reduced budget ({budget}), not included here.",
        "Apply to the full pipeline as an experiment (or copy the values into params.yaml):",
        f"  dvc exp run {args}",
    ]
    if model == "detectnet_v2":
        header += ["or train phase 1 alone:", f"  visionops {args} detectnet train"]
    body = yaml.safe_dump(dict(best.params), sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header) + body


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per trial, params as dotted keys."""
    keys = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else None
        row = {"number": trial.number, "state": trial.state.name, "value": trial.value,
               "pruned_at_epoch": trial.last_step if trial.state.name == "PRUNED" else None,
               "epochs_reported": len(trial.intermediate_values),
               "seconds": None if seconds is None else round(seconds, 2)}
        row.update({k: trial.params.get(k) for k in keys})
        row["retry_of"] = trial.system_attrs.get("failed_trial")
        row["worker"] = trial.user_attrs.get("worker")
        row["mlflow_run_id"] = trial.user_attrs.get("mlflow_run_id")
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def rows_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else (format_value(v) if isinstance(v, float) else v)
                         for k, v in row.items()})
    return buffer.getvalue()


def rows_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no trials)\n"
    columns = [c for c in rows[0] if c not in ("worker", "mlflow_run_id")]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _plots(study: optuna.Study, folder: Path) -> dict[str, str]:
    """Write the plots; returns plot name -> why it was skipped."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import optuna  # noqa: PLC0415
    from optuna.visualization import matplotlib as ovm  # noqa: PLC0415

    skipped = {}
    makers = {"optimization_history": ovm.plot_optimization_history,
              "param_importances": ovm.plot_param_importances,
              "intermediate_values": ovm.plot_intermediate_values}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)  # "no complete trials" and friends: reported below
                axes = make(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        if not any(ax.has_data() for ax in figure.axes):
            skipped[name] = "nothing to plot yet (too few finished trials)"
            plt.close(figure)
            continue
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        with atomic.atomic_path(folder / f"{name}.png") as tmp:
            figure.savefig(tmp, format="png", dpi=100)
        plt.close(figure)
    return skipped


def write_results(study: optuna.Study, cfg: ModelSweepParams, model: str, folder: Path, storage_label: str,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the results folder of ``study`` (replacing the previous one as a whole); returns the summary."""
    rows = trial_rows(study)
    best = best_trial(study)
    with atomic.atomic_dir(folder) as tmp:
        text = best_params_text(study, cfg, model, storage_label)
        if text is not None:
            atomic.write_text(tmp / "best_params.yaml", text)
        atomic.write_text(tmp / "trials.csv", rows_csv(rows))
        atomic.write_text(tmp / "trials.md", rows_markdown(rows))
        skipped = _plots(study, tmp)
        summary = {"study": study.study_name, "storage": storage_label, "metric": cfg.metric,
                   "direction": cfg.direction, "trials": counts(study),
                   "best": None if best is None else {"number": best.number, "value": best.value,
                                                      "params": best.params},
                   "plots_skipped": skipped, **(extra or {})}
        atomic.write_json(tmp / "summary.json", summary)
    return summary


def log_to_parent(run_id: str, folder: Path, summary: dict[str, Any], metric: str) -> None:
    """Attach the results folder to the parent run, log the headline numbers and close the run."""
    import mlflow  # noqa: PLC0415

    client = mlflow.MlflowClient()
    states = summary["trials"]
    metrics = {f"trials_{state.lower()}": float(n) for state, n in states.items()}
    if summary["best"] is not None:
        metrics[f"best/{metric}"] = float(summary["best"]["value"])
        metrics["best/trial"] = float(summary["best"]["number"])
        client.set_tag(run_id, "sweep.best_params", json.dumps(summary["best"]["params"])[:5000])
    if "wall_seconds" in summary:
        metrics["wall_seconds"] = float(summary["wall_seconds"])
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.log_artifacts(run_id, str(folder), artifact_path="sweep")
    client.set_terminated(run_id, status="FINISHED")
