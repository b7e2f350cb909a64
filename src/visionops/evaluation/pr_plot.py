"""Precision-recall curves of DetectNet_v2 KPI results as one PNG: a panel per model, a curve per class."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from visionops.evaluation.kpi import KpiResult


def plot_pr_curves(results: Mapping[str, KpiResult], path: str | os.PathLike) -> Path:
    """Write ``results`` (panel title -> KPI result) as side-by-side PR panels; legends carry each class's AP.

    The dot on each curve is the operating point of the KPI counts (the result's score threshold).
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI or DVC runners
    import matplotlib.pyplot as plt
    import numpy as np

    from visionops.atomic import atomic_path

    fig, axes = plt.subplots(1, len(results), figsize=(5.0 * len(results), 4.4), squeeze=False)
    try:
        for ax, (title, result) in zip(axes[0], results.items(), strict=True):
            for name, kpi in result.per_class.items():
                if kpi.ap_integrated is None:
                    continue  # no GT of this class: no curve
                line, = ax.plot(kpi.pr_recall, kpi.pr_precision, lw=1.4,
                                label=f"{name} (AP {100 * kpi.ap_integrated:.1f})")
                at = np.flatnonzero(kpi.pr_score >= result.score_threshold)
                if at.size:
                    ax.plot(kpi.pr_recall[at[-1]], kpi.pr_precision[at[-1]], "o", color=line.get_color(), ms=4)
            overall = result.map_integrated
            ax.set_title(f"{title}: mAP {100 * overall:.1f}" if overall is not None else f"{title}: no GT")
            ax.set(xlim=(0, 1.01), ylim=(0, 1.01), xlabel="recall", ylabel="precision")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path
