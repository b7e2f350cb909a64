"""Presenting a :class:`~visionops.evaluation.hota.HotaResult`: rich table, metrics JSON, bar chart, MLflow.

matplotlib, rich and mlflow are imported inside the functions that need them, so importing this module
(and the CLI) stays fast.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from visionops.evaluation.aicity_format import CLASS_NAMES
from visionops.evaluation.hota import METRICS, HotaResult

PLOT_METRICS: tuple[str, ...] = ("HOTA", "DetA", "AssA", "LocA")
"""Metrics drawn per class in the bar chart."""


def metric_key(name: str) -> str:
    """MLflow/JSON key of a metric: ``"DetA"`` -> ``"deta"``."""
    return name.lower()


def flat_metrics(result: HotaResult) -> dict[str, float]:
    """Flat metric dict for trackers: ``hota``, ``deta``, ... (overall), ``person/hota``, ... (per class)
    and ``scene_17/hota``, ... (per scene, only when there is more than one scene). Percentages."""
    out = {metric_key(name): value for name, value in result.overall.items()}
    for class_name, metrics in result.per_class.items():
        out.update({f"{class_name.lower()}/{metric_key(name)}": v for name, v in metrics.items()})
    if len(result.per_scene) > 1:
        for scene, metrics in result.per_scene.items():
            out.update({f"scene_{scene}/{metric_key(name)}": v for name, v in metrics.items()})
    return out


def build_table(result: HotaResult, title: str | None = None) -> Any:
    """A rich ``Table`` like a model card's: one row per scored class, then the overall average."""
    from rich.table import Table

    table = Table(title=title or f"HOTA ({result.protocol} protocol, %)", title_justify="left")
    table.add_column("Class", style="bold")
    for name in METRICS:
        table.add_column(name, justify="right")
    table.add_column("GT rows", justify="right")
    gt_rows: dict[str, int] = {}
    for seq in result.sequences:
        gt_rows[seq.class_name] = gt_rows.get(seq.class_name, 0) + seq.gt_rows
    for class_name in CLASS_NAMES:
        if class_name in result.per_class:
            metrics = result.per_class[class_name]
            table.add_row(class_name, *(f"{metrics[m]:.2f}" for m in METRICS), str(gt_rows[class_name]))
    table.add_section()
    table.add_row(
        "Average",
        *(f"{result.overall[m]:.2f}" for m in METRICS),
        str(sum(result.scene_weights.values())),
        style="bold",
    )
    return table


def build_scene_table(result: HotaResult) -> Any:
    """A rich ``Table`` of the per-scene values and their weights (GT rows)."""
    from rich.table import Table

    table = Table(title="Per scene (%)", title_justify="left")
    table.add_column("Scene", style="bold")
    for name in PLOT_METRICS:
        table.add_column(name, justify="right")
    table.add_column("Weight (GT rows)", justify="right")
    for scene, metrics in result.per_scene.items():
        table.add_row(str(scene), *(f"{metrics[m]:.2f}" for m in PLOT_METRICS), str(result.scene_weights[scene]))
    return table


def print_report(result: HotaResult, console: Any = None) -> None:
    """Print the class table (and the scene table when there are several scenes) and the notes."""
    from rich.console import Console

    if console is None:
        # A pipe or a test runner is no terminal: rich would then wrap the 12 columns at 80 characters.
        console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(build_table(result))
    if len(result.per_scene) > 1:
        console.print(build_scene_table(result))
    for note in result.notes:
        console.print(f"note: {note}", style="dim", markup=False, highlight=False)


def write_json(result: HotaResult, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``result.to_dict()`` (plus ``extra`` keys, e.g. input paths) as JSON, atomically."""
    from visionops.atomic import write_json as atomic_write_json

    data = result.to_dict()
    if extra:
        data = {**extra, **data}
    return atomic_write_json(path, data)


def plot_per_class(result: HotaResult, path: str | os.PathLike) -> Path:
    """Grouped bar chart of HOTA/DetA/AssA/LocA per class plus the overall average, as a PNG (atomic)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI or DVC runners
    import matplotlib.pyplot as plt
    import numpy as np

    from visionops.atomic import atomic_path

    labels = [c for c in CLASS_NAMES if c in result.per_class] + ["Average"]
    values = [result.per_class[c] for c in labels[:-1]] + [result.overall]
    x = np.arange(len(labels))
    width = 0.8 / len(PLOT_METRICS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(labels) + 2), 4.0))
    try:
        for i, name in enumerate(PLOT_METRICS):
            bars = ax.bar(x + (i - (len(PLOT_METRICS) - 1) / 2) * width, [v[name] for v in values], width, label=name)
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks(x, labels, rotation=20)
        # Head room above 100 for the legend, so it never hides a bar.
        ax.set_ylim(0, 122)
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("%")
        ax.set_title(f"HOTA per class ({result.protocol} protocol)")
        ax.legend(ncols=len(PLOT_METRICS), fontsize=8, loc="upper center")
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


def log_to_mlflow(
    result: HotaResult,
    json_path: str | os.PathLike | None = None,
    plot_path: str | os.PathLike | None = None,
    artifact_dir: str = "evaluation",
) -> bool:
    """Log metrics and the JSON/PNG artifacts into the active MLflow run; do nothing without one.

    Metrics are :func:`flat_metrics` (``hota``, ``deta``, ``person/hota``, ...). The JSON and the plot are
    logged from the given files, or written to a temporary folder first when no path is given.

    Returns:
        True when something was logged, False when there was no active run.
    """
    # No run can be active in this process if mlflow was never imported; checking first keeps the
    # evaluation CLI from paying mlflow's multi-second import when no tracking is going on.
    if "mlflow" not in sys.modules:
        return False
    import mlflow

    if mlflow.active_run() is None:
        return False
    mlflow.log_metrics(flat_metrics(result))
    with tempfile.TemporaryDirectory() as tmp:
        if json_path is None:
            json_path = write_json(result, Path(tmp, "hota.json"))
        if plot_path is None:
            plot_path = plot_per_class(result, Path(tmp, "hota_per_class.png"))
        mlflow.log_artifact(str(json_path), artifact_path=artifact_dir)
        mlflow.log_artifact(str(plot_path), artifact_path=artifact_dir)
    return True
