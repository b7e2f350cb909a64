"""``visionops export ...``: the export stages outside DVC, and a look inside an exported file.

Registered lazily in the main CLI (``"export": "visionops.export.commands:export"``); heavy imports happen in
the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("export")
def export() -> None:
    """ONNX / TensorRT export of the trained models (what `dvc repro export_detectnet export_sparse4d` runs)."""


def _params(ctx: click.Context):
    from visionops.cli import _load_params  # noqa: PLC0415

    return _load_params(ctx)


def _run(ctx: click.Context, which: str) -> None:
    from visionops.export.onnx_io import ExportError  # noqa: PLC0415
    from visionops.pipeline import export as stage  # noqa: PLC0415

    params = _params(ctx)
    try:
        report = getattr(stage, f"export_{which}")(params, echo=click.echo)
    except (FileNotFoundError, ValueError, ExportError) as exc:
        raise click.ClickException(str(exc)) from None
    folder = stage.DETECTNET_DIR if which == "detectnet" else stage.SPARSE4D_DIR
    click.echo(f"wrote {folder}/ ({', '.join(sorted(report['models']))}); report {folder / stage.REPORT}")


@export.command("detectnet")
@click.pass_context
def detectnet(ctx: click.Context) -> None:
    """Retrained (pruned) and phase-1 DetectNet_v2 -> exports/detectnet_v2/{model,unpruned}.onnx.

    Input `input_1` (N, 3, H, W) RGB / 255; outputs `output_cov/Sigmoid` and `output_bbox/BiasAdd` (the names
    DeepStream's DetectNet parser expects); dynamic batch. Checks ONNX Runtime against PyTorch, builds TensorRT
    engines where TensorRT and a GPU exist, registers `visionops-detectnet_v2` in MLflow.
    """
    _run(ctx, "detectnet")


@export.command("sparse4d")
@click.pass_context
def sparse4d(ctx: click.Context) -> None:
    """Trained Sparse4D -> exports/sparse4d/model.onnx, no custom operator (GridSample aggregation).

    Inputs img, projection_mat, image_wh, input_cached_feature, input_cached_anchor, prev_exists, interval_mask
    (dynamic batch and camera count); the instance bank runs on the host (`visionops infer sparse4d --onnx`).
    """
    _run(ctx, "sparse4d")


@export.command("info")
@click.argument("onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def info(onnx_file: Path) -> None:
    """Inputs, outputs and visionops metadata of an exported ONNX file (checked first)."""
    from visionops.export.onnx_io import ExportError, inference_session, read_metadata  # noqa: PLC0415

    try:
        meta = read_metadata(onnx_file)
        session = inference_session(onnx_file)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{onnx_file}: {onnx_file.stat().st_size / 1e6:.1f} MB")
    for kind, items in (("input", session.get_inputs()), ("output", session.get_outputs())):
        for item in items:
            click.echo(f"  {kind:6s} {item.name:24s} {item.type:16s} {item.shape}")
    click.echo(json.dumps(meta, indent=2, sort_keys=True))
