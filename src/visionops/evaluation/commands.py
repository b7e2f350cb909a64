"""``visionops evaluate ...``: the click group of the evaluation commands.

Registered in the main CLI with ``cli.add_command(evaluate)``. Only click is imported at module level;
numpy, trackeval, rich, matplotlib and mlflow load when a command runs, so ``visionops --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

_PROTOCOLS = ("aicity2025", "location")


@click.group("evaluate")
def evaluate() -> None:
    """Score models: HOTA of AI City 2025 Track 1 tracks, GT files from raw scenes."""


@evaluate.command("hota")
@click.option(
    "--gt",
    "gt_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ground truth, AI City 11-column track file.",
)
@click.option(
    "--pred",
    "pred_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Predictions, AI City 11-column track file (the submission format).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the metrics JSON here (atomically).",
)
@click.option(
    "--protocol",
    type=click.Choice(_PROTOCOLS),
    default="aicity2025",
    show_default=True,
    help="aicity2025: 3D IoU of rotated boxes (official); location: centre distance (2024).",
)
@click.option(
    "--permissive",
    is_flag=True,
    help="Accept any whitespace, blank lines and ints written as floats; print what was fixed.",
)
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a per-class bar chart PNG here."
)
def hota_command(
    gt_path: Path, pred_path: Path, json_path: Path | None, protocol: str, permissive: bool, plot_path: Path | None
) -> None:
    """HOTA, DetA, AssA, LocA (+ MOTA, IDF1) of PRED against GT, per class and averaged.

    Follows the AI City 2025 Track 1 evaluator: frames [0, 9000) that the GT annotates; one sequence
    per (scene, class); classes missing on either side skipped; scenes weighted by GT rows.
    """
    from visionops.evaluation.aicity_format import TrackFileError, load_tracks
    from visionops.evaluation.hota import evaluate_hota
    from visionops.evaluation.report import log_to_mlflow, plot_per_class, print_report, write_json

    try:
        gt_rows, gt_notes = load_tracks(gt_path, permissive=permissive)
        pred_rows, pred_notes = load_tracks(pred_path, permissive=permissive)
    except TrackFileError as exc:
        hint = "" if permissive else " (--permissive accepts loose whitespace and blank lines)"
        raise click.ClickException(f"{exc}{hint}") from None
    for note in gt_notes + pred_notes:
        click.echo(f"fixed: {note}", err=True)
    try:
        result = evaluate_hota(gt_rows, pred_rows, protocol=protocol)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    print_report(result)
    if json_path is not None:
        write_json(result, json_path, extra={"gt": str(gt_path), "pred": str(pred_path)})
        click.echo(f"wrote {json_path}", err=True)
    if plot_path is not None:
        plot_per_class(result, plot_path)
        click.echo(f"wrote {plot_path}", err=True)
    if log_to_mlflow(result, json_path=json_path, plot_path=plot_path):
        click.echo("logged the metrics to the active MLflow run", err=True)


@evaluate.command("gt-from-scene")
@click.argument("scene_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default="-",
    show_default=True,
    help="Output track file; '-' writes to stdout.",
)
@click.option(
    "--scene-id",
    type=int,
    default=None,
    help="Scene id for column 1; default: from the folder name (Warehouse_017 -> 17, Lab_000 -> 22, "
    "Hospital_000 -> 23).",
)
def gt_from_scene_command(scene_dir: Path, out_path: Path, scene_id: int | None) -> None:
    """Write the AI City 11-column GT track file of a raw scene folder (from its ground_truth.json)."""
    from visionops.evaluation.aicity_format import format_tracks, gt_rows_from_scene, write_tracks

    try:
        rows = gt_rows_from_scene(scene_dir, scene_id)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if str(out_path) == "-":
        sys.stdout.write(format_tracks(rows))
        sys.stdout.flush()
    else:
        write_tracks(out_path, rows)
        click.echo(f"wrote {len(rows)} GT rows to {out_path}", err=True)
