"""FP/FN causes of DetectNet_v2 models as one PNG: per model, where the GT went and what the detections hit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from visionops.evaluation.detection_errors import FN_CAUSES, FP_CAUSES, ErrorBreakdown
from visionops.evaluation.kpi import KpiResult

_GT_PARTS = ("found", *FN_CAUSES)
_DET_PARTS = ("true positive", *FP_CAUSES)
_COLOURS = {"found": "#2e7d32", "true positive": "#2e7d32", "localisation": "#f9a825", "confusion": "#8e24aa",
            "missed": "#c62828", "duplicate": "#1e88e5", "background": "#c62828"}


def plot_error_breakdown(results: Mapping[str, tuple[KpiResult, ErrorBreakdown]], path: str | os.PathLike) -> Path:
    """Write a row per model (title -> (KPIs, error causes)): stacked bars per class of its GT boxes (found or
    why not) and of its detections at the score threshold (TP or why not)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI or DVC runners
    import matplotlib.pyplot as plt
    import numpy as np

    from visionops.atomic import atomic_path

    fig, axes = plt.subplots(len(results), 2, figsize=(11.0, 0.5 + 0.45 * max(
        len(k.per_class) for k, _ in results.values()) * len(results) + 0.8 * len(results)), squeeze=False)
    try:
        for row, (title, (kpi, errors)) in zip(axes, results.items(), strict=True):
            names = list(kpi.per_class)
            y = np.arange(len(names))
            for ax, what in ((row[0], "ground truth"), (row[1], "detections")):
                left = np.zeros(len(names))
                for part, counts in bar_counts(kpi, errors, what).items():
                    ax.barh(y, counts, left=left, color=_COLOURS[part], label=part, height=0.7)
                    left += counts
                ax.set_yticks(y, names)
                ax.invert_yaxis()
                ax.set_xlabel("boxes")
                ax.set_title(f"{title}: {what} (score >= {kpi.score_threshold:g})", fontsize=9)
                ax.grid(axis="x", alpha=0.3)
                ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path


def bar_counts(kpi: KpiResult, errors: ErrorBreakdown, what: str) -> dict[str, list[int]]:
    """Segments of one panel, part -> count per class (``kpi.per_class`` order).

    ``what="ground truth"``: found (TP) and each FN cause, summing to the class's GT count;
    ``what="detections"``: TP and each FP cause, summing to its detections at the score threshold.
    """
    if what not in ("ground truth", "detections"):
        raise ValueError(f"what must be 'ground truth' or 'detections', got {what!r}")
    gt_side = what == "ground truth"
    out: dict[str, list[int]] = {}
    for part in _GT_PARTS if gt_side else _DET_PARTS:
        row = []
        for name, kpi_class in kpi.per_class.items():
            causes = errors.per_class[name].false_negatives if gt_side else errors.per_class[name].false_positives
            row.append(kpi_class.tp if part in ("found", "true positive") else causes[part])
        out[part] = row
    return out
