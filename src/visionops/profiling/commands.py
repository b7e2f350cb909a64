"""``visionops profile MODEL``: the profile stage for one model, outside DVC, with every knob on the command line.

Registered lazily in the main CLI (``"profile": "visionops.profiling.commands:profile"``); only click is imported
at module level.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from visionops.profiling.names import BACKEND_NAMES

MODEL_ALIASES = {"sparse4d": "sparse4d", "detectnet_v2": "detectnet_v2", "detectnet": "detectnet_v2"}


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        items = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,2,4, got {value!r}") from None
    if not items or min(items) < 1:
        raise click.BadParameter(f"expected integers >= 1, got {value!r}")
    return items


def _params(ctx: click.Context, updates: dict[str, Any]):
    """Params of the invocation (file + -S overrides) with the command-line options applied and validated."""
    from pydantic import ValidationError  # noqa: PLC0415

    from visionops.cli import _load_params  # noqa: PLC0415

    params = _load_params(ctx)
    try:
        for dotted, value in updates.items():
            if value is None:
                continue
            node = params.profile
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = getattr(node, part)
            setattr(node, leaf, value)  # sections validate assignments
    except ValidationError as exc:
        raise click.BadParameter(str(exc)) from None
    return params


def _untrained_sparse4d(preset: str, seed: int):
    import torch  # noqa: PLC0415

    from visionops.models.sparse4d.model import Sparse4D  # noqa: PLC0415
    from visionops.models.sparse4d.presets import get_preset  # noqa: PLC0415

    try:
        cfg = get_preset(preset)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--preset") from None
    torch.manual_seed(seed)
    return Sparse4D(cfg).eval()


def _untrained_detectnet(params, seed: int):
    import torch  # noqa: PLC0415

    from visionops.models.detectnet_v2.model import DetectNetV2  # noqa: PLC0415

    torch.manual_seed(seed)
    net = params.detectnet_v2
    return DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections).eval()


def _export_untrained(model_name: str, model, params, folder: Path, echo) -> Path:
    """ONNX of an untrained model in ``folder`` (the graph's latency does not depend on the weights)."""
    path = folder / "model.onnx"
    echo(f"[profile] exporting the untrained {model_name} to {path} for the ONNX Runtime backends")
    if model_name == "sparse4d":
        from visionops.export.sparse4d_onnx import export_sparse4d_onnx  # noqa: PLC0415

        return export_sparse4d_onnx(model, path, num_cameras=2)
    from visionops.export.detectnet_onnx import export_detectnet_onnx  # noqa: PLC0415

    net = params.detectnet_v2
    return export_detectnet_onnx(model, path, tuple(net.input_size), class_names=list(net.classes))


@click.command("profile")
@click.argument("model_name", metavar="MODEL", type=click.Choice(sorted(MODEL_ALIASES)))
@click.option("-b", "--backend", "backends", multiple=True, type=click.Choice(BACKEND_NAMES),
              help="Backend to time (repeatable); default profile.backends. Unavailable ones are skipped and the "
                   "report says why.")
@click.option("--cameras", callback=_int_list, metavar="N,N,...",
              help="Sparse4D: camera counts, e.g. 1,2,4,8 (default profile.sparse4d.cameras).")
@click.option("--batch", "batch_sizes", callback=_int_list, metavar="N,N,...",
              help="DetectNet_v2: batch sizes, e.g. 1,4,16 (default profile.detectnet_v2.batch_sizes).")
@click.option("--repeats", type=click.IntRange(1), help="Timed calls per point (default profile.repeats).")
@click.option("--warmup", type=click.IntRange(0), help="Untimed calls first (default profile.warmup).")
@click.option("--threads", type=click.IntRange(0), help="Intra-op threads, 0 = library default (profile.threads).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Default profile.device (auto).")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Exported graph; default exports/<model>/model.onnx.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint for the PyTorch backends; default models/sparse4d/model.ckpt or "
                   "models/detectnet_v2/retrained.ckpt.")
@click.option("--engine", "engine_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TensorRT engine; default the export stage's exports/<model>/model.<precision>.engine.")
@click.option("--preset", default=None,
              help="Sparse4D: time an untrained model of this preset (full_r101, r50, default) at its resolution "
                   "instead of a checkpoint; the ONNX is exported on the fly unless --onnx is given.")
@click.option("--untrained", is_flag=True,
              help="DetectNet_v2: time an untrained model of the detectnet_v2 params (e.g. after "
                   "`-S` overrides from `visionops params preset dashcamnet --print-overrides`).")
@click.option("--scene", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Sparse4D: raw scene folder with the frames (default: the first of data/raw/val).")
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="DetectNet_v2: KITTI split folder with images/ and labels/ (default data/kitti/val).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Report folder; default reports/profile/<model>. Files: <device-slug>.json|.md|.png|.csv.")
@click.option("--track/--no-track", default=True, show_default=True,
              help="Log an MLflow run (named profile_sparse4d / profile_detectnet, as the DVC stages).")
@click.pass_context
def profile(ctx: click.Context, model_name: str, backends: tuple[str, ...], cameras: list[int] | None,
            batch_sizes: list[int] | None, repeats: int | None, warmup: int | None, threads: int | None,
            device: str | None, onnx_path: Path | None, checkpoint: Path | None, engine_path: Path | None,
            preset: str | None, untrained: bool, scene: Path | None, images_dir: Path | None, out_dir: Path | None,
            track: bool) -> None:
    """Time MODEL (sparse4d | detectnet_v2) per backend on this device and write its reports.

    \b
    Sparse4D: latency of one frame (batch 1) vs number of cameras, and how many cameras this device sustains
    at 30 / 15 / 10 FPS (the TAO model card's table). DetectNet_v2: latency vs batch size, the largest batch
    under 33 ms and images/s (the DashCamNet card's method). Inputs are real frames / images of the pipeline's
    val split; the numbers are medians of synchronised timed calls after warm-up (p10/p90/IQR in the JSON).

    \b
    Examples:
      visionops profile sparse4d --cameras 1,2,4,8 -b pytorch -b onnxruntime_cpu
      visionops profile detectnet_v2 --batch 1,8,32 --repeats 50
      visionops profile sparse4d --preset full_r101 --cameras 1,4,8,16,28 --device cuda
      eval "visionops $(visionops params preset dashcamnet --print-overrides) profile detectnet --untrained"
    """
    from visionops.export.onnx_io import ExportError  # noqa: PLC0415
    from visionops.pipeline import profile as stage  # noqa: PLC0415

    model = MODEL_ALIASES[model_name]
    if model == "sparse4d" and batch_sizes:
        raise click.BadParameter("--batch is for detectnet_v2; Sparse4D is timed at batch 1 vs --cameras")
    if model == "detectnet_v2" and (cameras or preset):
        raise click.BadParameter("--cameras / --preset are for sparse4d; DetectNet_v2 takes --batch / --untrained")
    if model == "sparse4d" and untrained:
        raise click.BadParameter("--untrained is for detectnet_v2; Sparse4D takes --preset NAME")
    params = _params(ctx, {"backends": list(backends) or None, "repeats": repeats, "warmup": warmup,
                           "threads": threads, "device": device, "sparse4d.cameras": cameras,
                           "detectnet_v2.batch_sizes": batch_sizes})
    seed = params.profile.seed
    with tempfile.TemporaryDirectory(prefix="visionops-profile-") as tmp:
        try:
            eager, info = None, None
            if preset or untrained:
                eager = _untrained_sparse4d(preset, seed) if preset else _untrained_detectnet(params, seed)
                info = {"preset": preset} if preset else {}
                info["weights"] = "untrained (latency does not depend on the weights)"
                wants_onnx = any(b.startswith("onnxruntime") or b == "tensorrt" for b in params.profile.backends)
                if onnx_path is None and wants_onnx:
                    onnx_path = _export_untrained(model, eager, params, Path(tmp), click.echo)
            if model == "sparse4d":
                result = stage.profile_sparse4d(params, onnx_path=onnx_path, checkpoint=checkpoint,
                                                engine_path=engine_path, scene=scene, model=eager, model_info=info,
                                                echo=click.echo)
            else:
                result = stage.profile_detectnet(params, onnx_path=onnx_path, checkpoint=checkpoint,
                                                 engine_path=engine_path, images_dir=images_dir, model=eager,
                                                 model_info=info, echo=click.echo)
        except (FileNotFoundError, ValueError, ExportError) as exc:
            raise click.ClickException(str(exc)) from None
        if onnx_path is not None and Path(tmp) in onnx_path.parents:
            result.model_info["onnx"] = "exported on the fly (temporary)"
    folder = out_dir or stage.REPORTS / model
    files = stage.save(result, out_dir=folder, plot_csv=folder / f"{result.device.slug}.csv", track=track,
                       params=params, echo=click.echo)
    click.echo(files["md"].read_text())
