"""Profile reports: ``<slug>.json`` (everything), ``<slug>.md`` (the model card's table layout), ``<slug>.png``
(latency vs cameras / batch, one line per backend) and a CSV for DVC plots. Every file is written atomically.

Markdown layouts:

* Sparse4D, as the TAO card: one row per device, columns ``<backend> @30 FPS``, ``<backend> @15 FPS``, ... =
  cameras one device sustains (``~n`` interpolated between timed camera counts, ``>=n`` a lower bound: the
  largest timed count still met the budget, ``<=n`` an upper bound: the smallest timed count missed it).
* DetectNet_v2, as the DashCamNet card: per backend, batch 1 and the largest batch under the budget, with the
  batch latency and images per second.

Both add the full latency table (median and p10-p90 in ms per size and backend) and the skipped backends with
their reasons.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from visionops import atomic
from visionops.config.profile_params import BACKEND_NAMES
from visionops.profiling.result import BACKEND_LABELS, MODEL_TITLES, ProfileResult


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _header(result: ProfileResult) -> list[str]:
    info, settings, device = result.model_info, result.settings, result.device
    lines = [f"# {MODEL_TITLES.get(result.model, result.model)} latency on {device.name}", ""]
    described = ", ".join(f"{k} {v}" for k, v in info.items() if not isinstance(v, dict | list) and v is not None)
    if described:
        lines += [f"Model: {described}.", ""]
    versions = device.details.get("versions", {})
    lines += [f"Device: {device.name} ({device.kind}, slug `{device.slug}`); {device.details.get('cpu_count')} CPU "
              f"cores, {device.details.get('torch_threads')} PyTorch threads; "
              + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
              f"Protocol: {settings.get('warmup')} warm-up calls, then the median of {settings.get('repeats')} "
              f"synchronised timed calls per point on real inputs (seed {settings.get('seed')}); measured "
              f"{result.created}.", ""]
    return lines


def _sparse4d_capacity(result: ProfileResult) -> list[str]:
    capacity = result.capacity()
    if not capacity:
        return ["No backend produced a measurement.", ""]
    fps_list = [f"{fps:g}" for fps in result.settings.get("fps_targets", [30, 15, 10])]
    columns = [(backend, fps) for fps in fps_list for backend in capacity]
    head = "| Device | " + " | ".join(f"{BACKEND_LABELS.get(b, b)} @{fps} FPS" for b, fps in columns) + " |"
    sep = "|---|" + "---|" * len(columns)
    row = f"| 1 x {result.device.name} | " + " | ".join(capacity[b][fps].label() for b, fps in columns) + " |"
    rates = []
    for curve in result.measured:
        cams = min(curve.points)
        ms = curve.points[cams].median_ms
        rates.append(f"{BACKEND_LABELS.get(curve.backend, curve.backend)} {1000.0 / ms:.1f} FPS" if ms > 0 else "-")
    smallest = min(min(c.points) for c in result.measured)
    return ["## Cameras per device (batch 1, one BEV group per forward)", "", head, sep, row, "",
            "`~n`: interpolated between timed camera counts; `>=n`: the largest timed count still meets the frame "
            "rate (time more cameras for the true value); `<=n`: even the smallest timed count misses it.", "",
            f"Frame rate at the smallest timed count ({smallest} camera{'s' if smallest > 1 else ''}): "
            + ", ".join(rates) + ".", ""]


def _detectnet_capacity(result: ProfileResult) -> list[str]:
    capacity = result.capacity()
    if not capacity:
        return ["No backend produced a measurement.", ""]
    budget = result.settings.get("latency_budget_ms", 33.0)
    lines = [f"## Throughput (largest batch whose batch latency stays under {budget:g} ms)", "",
             "| Device | Backend | Precision | Batch size | Batch latency (ms) | Images/s |",
             "|---|---|---|---|---|---|"]
    precision = result.model_info.get("precision", {})
    for backend, value in capacity.items():
        label, prec = BACKEND_LABELS.get(backend, backend), precision.get(backend, "fp32")
        if "batch1_latency_ms" in value:
            lines.append(f"| {result.device.name} | {label} | {prec} | 1 | {_fmt(value['batch1_latency_ms'], 2)} | "
                         f"{_fmt(value['batch1_images_per_s'])} |")
        shown = {"measured": "", "at_least": ">=", "at_most": "<=", "interpolated": "~"}[value["bound"]]
        if value["batch"] == 0:
            smallest = min(next(c for c in result.curves if c.backend == backend).points)
            lines.append(f"| {result.device.name} | {label} | {prec} | none: batch {smallest} takes longer than "
                         f"{budget:g} ms | - | - |")
        elif value["batch"] != 1 or value["bound"] != "measured":
            lines.append(f"| {result.device.name} | {label} | {prec} | {shown}{value['batch']} | "
                         f"{_fmt(value['batch_latency_ms'], 2)} | {_fmt(value['images_per_s'])} |")
    lines += ["", f"`>=n`: the largest timed batch is still under {budget:g} ms (time larger batches); `<=n`: even "
              "the smallest timed batch is over it.", ""]
    return lines


def _latency_table(result: ProfileResult) -> list[str]:
    measured = result.measured
    if not measured:
        return []
    sizes = sorted({size for curve in measured for size in curve.points})
    head = f"| {result.size_name} | " + " | ".join(BACKEND_LABELS.get(c.backend, c.backend) for c in measured) + " |"
    lines = [f"## Latency vs {result.size_name} (ms: median [p10-p90])", "", head, "|---|" + "---|" * len(measured)]
    for size in sizes:
        cells = []
        for curve in measured:
            stats = curve.points.get(size)
            cells.append("-" if stats is None else
                         f"{stats.median_ms:.2f} [{stats.p10_ms:.2f}-{stats.p90_ms:.2f}]")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    setups = [f"{BACKEND_LABELS.get(c.backend, c.backend)} {c.setup_s:.1f} s" for c in measured if c.setup_s]
    if setups:
        lines += ["", "Set-up incl. first call (compilation, session creation): " + ", ".join(setups) + "."]
    noisy = noisy_points(result)
    if noisy:
        lines += ["", f"**Noisy**: p90 - p10 exceeds {NOISE_RATIO:g} x the median at {', '.join(noisy)}. Another "
                  "process was competing for the device (on a shared CPU, OpenMP threads that wait for a descheduled "
                  "sibling can make PyTorch many times slower): rerun on an idle machine or with `profile.threads: 1`."]
    return [*lines, ""]


NOISE_RATIO = 0.5
"""Spread (p90 - p10) / median above which a point is flagged as noisy in the markdown."""


def noisy_points(result: ProfileResult) -> list[str]:
    """``"<backend> @ <size>"`` of every point whose p10-p90 spread exceeds :data:`NOISE_RATIO` x its median."""
    return [f"{BACKEND_LABELS.get(c.backend, c.backend)} @ {size}" for c in result.measured
            for size, stats in sorted(c.points.items())
            if stats.median_ms > 0 and (stats.p90_ms - stats.p10_ms) / stats.median_ms > NOISE_RATIO]


def _skipped(result: ProfileResult) -> list[str]:
    lines = []
    for curve in result.curves:
        label = BACKEND_LABELS.get(curve.backend, curve.backend)
        if not curve.points:
            lines.append(f"- {label}: {curve.status}: {curve.reason}")
        for size, message in sorted(curve.errors.items()):
            if curve.points:
                lines.append(f"- {label} at {result.size_name} = {size}: {message}")
    return ["## Skipped", "", *lines, ""] if lines else []


def markdown(result: ProfileResult) -> str:
    """The markdown report (see the module docstring)."""
    body = _sparse4d_capacity(result) if result.model == "sparse4d" else _detectnet_capacity(result)
    return "\n".join([*_header(result), *body, *_latency_table(result), *_skipped(result)]).rstrip() + "\n"


def plot_csv(result: ProfileResult) -> str:
    """CSV for DVC plots: one row per size, one column per known backend (median ms; empty where not timed).

    Every backend of :data:`BACKEND_NAMES` has a column, so the plot definition in dvc.yaml stays valid whichever
    backends ran.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([result.size_name, *BACKEND_NAMES])
    by_backend = {curve.backend: curve.points for curve in result.curves}
    sizes = sorted({size for points in by_backend.values() for size in points})
    for size in sizes:
        row: list[Any] = [size]
        for name in BACKEND_NAMES:
            stats = by_backend.get(name, {}).get(size)
            row.append("" if stats is None else f"{stats.median_ms:.4f}")
        writer.writerow(row)
    return buffer.getvalue()


def save_plot(result: ProfileResult, path: str | os.PathLike) -> Path:
    """PNG: median latency (p10-p90 band) vs size, one line per backend, with the budgets as dashed lines."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    try:
        for curve in result.measured:
            sizes = sorted(curve.points)
            stats = [curve.points[s] for s in sizes]
            line, = ax.plot(sizes, [s.median_ms for s in stats], marker="o",
                            label=BACKEND_LABELS.get(curve.backend, curve.backend))
            ax.fill_between(sizes, [s.p10_ms for s in stats], [s.p90_ms for s in stats], color=line.get_color(),
                            alpha=0.2)
        if result.model == "sparse4d":
            budgets = [(1000.0 / fps, f"{fps:g} FPS") for fps in result.settings.get("fps_targets", [30, 15, 10])]
        else:
            budgets = [(result.settings.get("latency_budget_ms", 33.0), "budget")]
        for ms, text in budgets:
            ax.axhline(ms, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(f"{text} ({ms:.0f} ms)", (0.01, ms), xycoords=("axes fraction", "data"), fontsize=7,
                        color="grey", va="bottom")
        ax.set_xlabel("cameras (batch 1)" if result.size_name == "cameras" else "batch size")
        ax.set_ylabel("latency per forward (ms)")
        ax.set_title(f"{MODEL_TITLES.get(result.model, result.model)} on {result.device.name}", fontsize=10)
        ax.grid(alpha=0.3)
        if result.measured:
            ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def write_reports(result: ProfileResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``<out_dir>/<device slug>.json|.md|.png`` (other devices' files in ``out_dir`` are left alone)."""
    out_dir = Path(out_dir)
    stem = out_dir / result.device.slug
    return {"json": atomic.write_json(stem.with_suffix(".json"), result.to_dict()),
            "md": atomic.write_text(stem.with_suffix(".md"), markdown(result)),
            "png": save_plot(result, stem.with_suffix(".png"))}


def write_plot_csv(result: ProfileResult, path: str | os.PathLike) -> Path:
    return atomic.write_text(path, plot_csv(result))
