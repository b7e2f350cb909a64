"""The ``profile`` stage: per-device latency of both exported models on every available backend.

Files (relative to the repository root)::

    exports/sparse4d/model.onnx, exports/detectnet_v2/model.onnx   the graphs (export stage)
    exports/<model>/model.<fp16|int8|fp32>.engine                   TensorRT engines, where built
    models/sparse4d/model.ckpt, models/detectnet_v2/retrained.ckpt  the same models for the PyTorch backends
    data/raw/val/<Scene>/          real frames for Sparse4D (first val scene, its cameras repeated as needed)
    data/kitti/val/images/         real images for DetectNet_v2
 -> reports/profile/<model>/<device-slug>.json|.md|.png    per device (see visionops.profiling.report)
    plots/profile/<model>.csv                               latency vs cameras / batch per backend (dvc plots)

Two DVC stages, ``profile_sparse4d`` and ``profile_detectnet`` (:data:`STAGES`), each an MLflow run of that name in
its family's experiment with the latency table as metrics and the report files as artifacts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from visionops.config import Params

MODELS = ("sparse4d", "detectnet_v2")
STAGES = {"sparse4d": "profile_sparse4d", "detectnet_v2": "profile_detectnet"}
"""DVC stage (and MLflow run name) per model: one stage each, so one model's change does not re-time the other."""
EXPORTS = Path("exports")
ONNX = {"sparse4d": EXPORTS / "sparse4d" / "model.onnx", "detectnet_v2": EXPORTS / "detectnet_v2" / "model.onnx"}
CHECKPOINTS = {"sparse4d": Path("models/sparse4d/model.ckpt"),
               "detectnet_v2": Path("models/detectnet_v2/retrained.ckpt")}
ENGINE_PRECISIONS = {"sparse4d": ("fp16", "fp32", "int8"), "detectnet_v2": ("int8", "fp16", "fp32")}
"""Engine preference per model: the cards deploy Sparse4D in FP16 and the pruned DashCamNet in INT8."""
RAW_VAL = Path("data/raw/val")
KITTI_VAL = Path("data/kitti/val")
REPORTS = Path("reports/profile")
PLOTS = Path("plots/profile")


def find_engine(model: str, root: Path = Path(".")) -> tuple[Path | None, str | None]:
    """(path, precision) of the preferred existing TensorRT engine of ``model``, or (None, None)."""
    for precision in ENGINE_PRECISIONS[model]:
        path = root / EXPORTS / model / f"model.{precision}.engine"
        if path.is_file():
            return path, precision
    return None, None


def _seed(seed: int) -> None:
    import random  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _settings(params: Params, model: str, sizes: Sequence[int], warmup: int) -> dict[str, Any]:
    prof = params.profile
    out: dict[str, Any] = {"warmup": warmup, "repeats": prof.repeats, "threads": prof.threads, "seed": prof.seed,
                           "sizes": list(sizes), "backends": list(prof.backends)}
    if model == "sparse4d":
        out.update(fps_targets=list(prof.sparse4d.fps_targets), frames=prof.sparse4d.frames)
    else:
        out.update(latency_budget_ms=prof.detectnet_v2.latency_budget_ms, images=prof.detectnet_v2.images)
    return out


def _precisions(backends: Sequence[str], engine_precision: str | None) -> dict[str, str]:
    return {b: (engine_precision or "-") if b == "tensorrt" else "fp32" for b in backends}


def _prepare(params: Params, model: str, root: Path, onnx_path: Path | None, engine_path: Path | None):
    """Seed, threads, the device, and the files to time: (device, onnx path, engine path, engine precision)."""
    from visionops.profiling.backends import set_threads  # noqa: PLC0415
    from visionops.profiling.device import detect_device  # noqa: PLC0415

    prof = params.profile
    _seed(prof.seed)
    set_threads(prof.threads)
    device = detect_device(prof.device, prof.threads)
    onnx_path = onnx_path or root / ONNX[model]
    if engine_path is None:
        engine_path, engine_precision = find_engine(model, root)
    else:
        engine_precision = engine_path.suffixes[-2].lstrip(".") if len(engine_path.suffixes) > 1 else "?"
    return device, onnx_path, engine_path, engine_precision


def profile_sparse4d(params: Params, *, root: Path = Path("."), onnx_path: Path | None = None,
                     checkpoint: Path | None = None, engine_path: Path | None = None, scene: Path | None = None,
                     model: Any = None, model_info: dict[str, Any] | None = None,
                     echo: Callable[[str], Any] = print):
    """Profile Sparse4D (``profile.sparse4d``); returns a :class:`~visionops.profiling.result.ProfileResult`.

    Args:
        onnx_path / checkpoint / engine_path / scene: override the pipeline's files (see the module docstring).
        model: an eager Sparse4D to use instead of loading ``checkpoint`` (e.g. an untrained preset);
            ``model_info`` then describes it.
    """
    from visionops.profiling.curve import profile_curves  # noqa: PLC0415
    from visionops.profiling.result import ProfileResult  # noqa: PLC0415
    from visionops.profiling.sparse4d import Sparse4DWorkload, load_frames, pick_scene  # noqa: PLC0415
    from visionops.training.sparse4d_fit import load_sparse4d_checkpoint  # noqa: PLC0415

    prof = params.profile
    device, onnx_path, engine_path, engine_precision = _prepare(params, "sparse4d", root, onnx_path, engine_path)
    info = dict(model_info or {})
    if model is None:
        checkpoint = checkpoint or root / CHECKPOINTS["sparse4d"]
        model, meta = load_sparse4d_checkpoint(checkpoint)
        info.update(preset=meta.get("preset"), checkpoint=str(checkpoint))
    cfg = model.cfg
    input_size = tuple(int(v) for v in cfg.input_size)
    info.update(backbone=cfg.backbone, input=f"{input_size[0]}x{input_size[1]}", anchors=cfg.num_anchor,
                temporal=cfg.num_temp_instances, decoder_layers=cfg.num_decoder,
                parameters=sum(p.numel() for p in model.parameters()), onnx=str(onnx_path),
                engine=str(engine_path) if engine_path else None, batch=1,
                precision=_precisions(prof.backends, engine_precision))
    scene = scene or pick_scene(root / RAW_VAL)
    info["frames_from"] = str(scene)
    frames = load_frames(scene, input_size, prof.sparse4d.frames)
    echo(f"[profile] sparse4d on {device.name}: {len(frames)} frames of {scene} ({len(frames[0].cameras)} cameras), "
         f"cameras {prof.sparse4d.cameras}")
    workload = Sparse4DWorkload(frames, module=model, onnx_path=onnx_path, engine_path=engine_path,
                                device=device.kind, threads=prof.threads,
                                frame_interval=float(cfg.default_time_interval))
    # At least two untimed frames, so the temporal path with a filled bank is what gets timed.
    warmup = max(prof.warmup, 2)
    curves = profile_curves(workload, prof.backends, prof.sparse4d.cameras, warmup=warmup, repeats=prof.repeats,
                            echo=echo)
    model.reset()
    return ProfileResult("sparse4d", "cameras", device, curves, info,
                         _settings(params, "sparse4d", prof.sparse4d.cameras, warmup))


def profile_detectnet(params: Params, *, root: Path = Path("."), onnx_path: Path | None = None,
                      checkpoint: Path | None = None, engine_path: Path | None = None, images_dir: Path | None = None,
                      model: Any = None, model_info: dict[str, Any] | None = None,
                      echo: Callable[[str], Any] = print):
    """Profile DetectNet_v2 (``profile.detectnet_v2``, the model of ``detectnet_v2``); see :func:`profile_sparse4d`."""
    from visionops.pipeline.detectnet import load_checkpoint_model  # noqa: PLC0415
    from visionops.profiling.curve import profile_curves  # noqa: PLC0415
    from visionops.profiling.detectnet import DetectNetWorkload, load_images  # noqa: PLC0415
    from visionops.profiling.result import ProfileResult  # noqa: PLC0415

    prof, net = params.profile, params.detectnet_v2
    device, onnx_path, engine_path, engine_precision = _prepare(params, "detectnet_v2", root, onnx_path, engine_path)
    info = dict(model_info or {})
    if model is None:
        checkpoint = checkpoint or root / CHECKPOINTS["detectnet_v2"]
        model, history = load_checkpoint_model(checkpoint, net)
        info.update(checkpoint=str(checkpoint), pruned=bool(history))
    width, height = (int(v) for v in net.input_size)
    info.update(arch=net.arch, input=f"{width}x{height}", classes=len(net.classes),
                parameters=sum(p.numel() for p in model.parameters()), onnx=str(onnx_path),
                engine=str(engine_path) if engine_path else None,
                precision=_precisions(prof.backends, engine_precision))
    images_dir = images_dir or root / KITTI_VAL
    info["images_from"] = str(images_dir)
    images = load_images(images_dir, net.classes, (width, height), prof.detectnet_v2.images)
    echo(f"[profile] detectnet_v2 on {device.name}: {len(images)} images of {images_dir}, "
         f"batches {prof.detectnet_v2.batch_sizes}")
    workload = DetectNetWorkload(images, module=model, onnx_path=onnx_path, engine_path=engine_path,
                                 device=device.kind, threads=prof.threads)
    curves = profile_curves(workload, prof.backends, prof.detectnet_v2.batch_sizes, warmup=prof.warmup,
                            repeats=prof.repeats, echo=echo)
    return ProfileResult("detectnet_v2", "batch", device, curves, info,
                         _settings(params, "detectnet_v2", prof.detectnet_v2.batch_sizes, prof.warmup))


def save(result, *, root: Path = Path("."), out_dir: Path | None = None, plot_csv: Path | None = None,
         track: bool = True, params: Params | None = None, echo: Callable[[str], Any] = print) -> dict[str, Path]:
    """Write the reports (``reports/profile/<model>/<slug>.*``) and the DVC plot CSV; log the MLflow run."""
    from visionops.profiling.report import write_plot_csv, write_reports  # noqa: PLC0415

    files = write_reports(result, out_dir or root / REPORTS / result.model)
    csv_path = plot_csv if plot_csv is not None else root / PLOTS / f"{result.model}.csv"
    files["csv"] = write_plot_csv(result, csv_path)
    echo(f"[profile] {result.model}: wrote {', '.join(str(p) for p in files.values())}")
    if track:
        _log(result, files, params)
    return files


def _log(result, files: dict[str, Path], params: Params | None) -> None:
    import mlflow  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415

    prof = params.profile if params is not None else {}
    prefix = params.tracking.experiment_prefix if params is not None else ""
    with tracking.stage_run(STAGES[result.model], result.model, prof, params_prefix="profile.",
                            experiment_prefix=prefix,
                            pipeline_params=params, tags={"profile.device": result.device.name,
                                                          "profile.device_slug": result.device.slug}):
        metrics = result.metrics()
        items = list(metrics.items())
        for i in range(0, len(items), 100):  # MLflow caps one batch
            mlflow.log_metrics(dict(items[i:i + 100]))
        for path in files.values():
            mlflow.log_artifact(str(path), artifact_path="profile")
        tracking.log_headline_metrics(result.headline())


def run(params: Params, *, root: Path = Path("."), models: Sequence[str] = MODELS,
        echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """The DVC stages: profile ``models``, write every report, one MLflow run per model."""
    out: dict[str, Any] = {}
    for name in models:
        result = profile_sparse4d(params, root=root, echo=echo) if name == "sparse4d" else \
            profile_detectnet(params, root=root, echo=echo)
        save(result, root=root, params=params, echo=echo)
        out[name] = result
    return out
