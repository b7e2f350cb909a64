"""``visionops detectnet ...``: the DetectNet_v2 stages from the command line (click only at import)."""

from __future__ import annotations

from pathlib import Path

import click


def _params(ctx: click.Context):
    from visionops.cli import _load_params  # noqa: PLC0415

    return _load_params(ctx)


def _run(step, ctx: click.Context, **kwargs) -> None:
    try:
        step(_params(ctx), root=Path("."), echo=click.echo, **kwargs)
    except (FileNotFoundError, ValueError, FloatingPointError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group("detectnet")
def detectnet() -> None:
    """DetectNet_v2 (DashCamNet recipe): train with L1 -> prune -> retrain -> evaluate, on data/kitti.

    Each command is tracked in MLflow (experiment detectnet_v2); params come from params.yaml
    (detectnet_v2, prune) with -S overrides, e.g. visionops -S detectnet_v2.train.epochs=5 detectnet train
    """


@detectnet.command("train")
@click.pass_context
def train(ctx: click.Context) -> None:
    """Phase 1: train from scratch (or detectnet_v2.pretrained) -> models/detectnet_v2/phase1.ckpt."""
    from visionops.pipeline.detectnet import fit  # noqa: PLC0415

    _run(fit, ctx, phase="train")


@detectnet.command("prune")
@click.pass_context
def prune(ctx: click.Context) -> None:
    """Prune phase 1 with TAO's threshold semantics -> models/detectnet_v2/pruned.pt + reports/prune/."""
    from visionops.pipeline.detectnet import prune as prune_step  # noqa: PLC0415

    _run(prune_step, ctx)


@detectnet.command("retrain")
@click.pass_context
def retrain(ctx: click.Context) -> None:
    """Phase 2: retrain the pruned model (no L1 by default) -> models/detectnet_v2/retrained.ckpt."""
    from visionops.pipeline.detectnet import fit  # noqa: PLC0415

    _run(fit, ctx, phase="retrain")


@detectnet.command("evaluate")
@click.pass_context
def evaluate(ctx: click.Context) -> None:
    """KPIs of phase 1 and the retrained model on data/kitti/val -> metrics/detectnet_v2.json, PR curves."""
    from visionops.pipeline.detectnet_evaluate import evaluate as evaluate_step  # noqa: PLC0415

    _run(evaluate_step, ctx)
