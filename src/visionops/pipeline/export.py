"""DVC stages ``export_detectnet`` and ``export_sparse4d``: trained checkpoints -> ONNX (+ TensorRT engines).

Per model, into ``exports/<model>/`` (written as a whole folder, atomically):

* ``model.onnx`` (DetectNet_v2: the retrained pruned model; Sparse4D: the trained model) and, for DetectNet_v2,
  ``unpruned.onnx`` (phase 1) so the profile stage can compare both;
* ``export.json``: parity against PyTorch (max |ONNX Runtime - PyTorch| per output on seeded inputs at two
  shapes other than the trace's, so the dynamic axes are exercised; the stage fails when it exceeds
  ``export.parity_tolerance`` times the output's scale), sizes, the TensorRT outcome (engines built, or which
  were skipped and why), the registry version;
* ``model.<precision>.engine`` + ``calibration.bin`` where TensorRT and a CUDA GPU exist.

A checkpoint that does not match the params (another preset, class list or backbone) fails with the mismatch
named. Each export is an MLflow run (experiment of its model) and the ONNX model is registered as
``visionops-<model>`` with the alias ``current``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from visionops.config import Params

EXPORTS = Path("exports")
DETECTNET_DIR = EXPORTS / "detectnet_v2"
SPARSE4D_DIR = EXPORTS / "sparse4d"
REPORT = "export.json"


class CheckpointMismatch(ValueError):
    """The checkpoint was trained with other architecture params than params.yaml holds."""


# --------------------------------------------------------------------------------------------------
# DetectNet_v2
# --------------------------------------------------------------------------------------------------


def _load_detectnet(path: Path, params: Params):
    from visionops.pipeline.detectnet import load_checkpoint_model  # noqa: PLC0415

    net = params.detectnet_v2
    try:
        model, history = load_checkpoint_model(path, net)
    except RuntimeError as exc:  # load_state_dict: missing keys / size mismatch
        first = str(exc).splitlines()[1:3]
        raise CheckpointMismatch(
            f"{path} does not match detectnet_v2 params (arch {net.arch}, {len(net.classes)} classes, "
            f"all_projections {net.all_projections}): {' '.join(s.strip() for s in first)}. Export the checkpoint "
            "with the params it was trained with, or re-run training (dvc repro)") from None
    return model, history


def detectnet_calibration_batches(params: Params, root: Path, batches: int, batch_size: int
                                  ) -> Iterator[dict[str, np.ndarray]]:
    """INT8 calibration input: training images preprocessed as in training (RGB / 255 at the input size)."""
    from visionops.data.kitti_dataset import KittiDetectionDataset  # noqa: PLC0415
    from visionops.export.detectnet_onnx import INPUT_NAME  # noqa: PLC0415

    net = params.detectnet_v2
    dataset = KittiDetectionDataset(root / "data/kitti/train", net.classes, tuple(net.input_size))
    order = np.random.default_rng(net.seed).permutation(len(dataset))
    for start in range(0, min(len(order), batches * batch_size) - batch_size + 1, batch_size):
        images = [dataset[int(i)]["image"].numpy() for i in order[start:start + batch_size]]
        yield {INPUT_NAME: np.stack(images).astype(np.float32)}


def _detectnet_parity(model, path: Path, params: Params, root: Path) -> dict[str, Any]:
    import torch  # noqa: PLC0415

    from visionops.export.detectnet_onnx import INPUT_NAME, OUTPUT_NAMES  # noqa: PLC0415
    from visionops.export.onnx_io import inference_session  # noqa: PLC0415

    session = inference_session(path)
    report = {}
    batches = detectnet_calibration_batches(params, root, 1, 3)
    real = next(batches, None)
    for batch in (1, 3):
        if real is not None:
            images = real[INPUT_NAME][:batch]
        else:  # no training images: seeded noise in [0, 1]
            w, h = params.detectnet_v2.input_size
            images = np.random.default_rng(batch).random((batch, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            expected = [t.numpy() for t in model.predict(torch.from_numpy(images))]
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
        report[f"batch{batch}"] = {name: parity_error(g, e) for name, g, e in zip(OUTPUT_NAMES, got, expected,
                                                                                 strict=True)}
    return report


def parity_error(onnx_out: np.ndarray, torch_out: np.ndarray, velocity_dt: float | None = None) -> dict[str, float]:
    """``max_abs``: max |ONNX - PyTorch|; ``normalised``: that over max(1, max |PyTorch|), the gated number.

    With ``velocity_dt`` the last 3 channels (velocity = regressed displacement / dt) are compared in metres per
    frame, i.e. multiplied by dt, as the network regresses them.
    """
    diff = np.abs(onnx_out - torch_out).astype(np.float64)
    scale = np.abs(torch_out).astype(np.float64)
    if velocity_dt is not None:
        diff[..., 8:] *= velocity_dt
        scale[..., 8:] *= velocity_dt
    max_abs = float(diff.max())
    return {"max_abs": max_abs, "normalised": max_abs / max(1.0, float(scale.max()))}


def _worst(parity: dict[str, dict[str, dict[str, float]]], key: str) -> float:
    return max(entry[key] for case in parity.values() for entry in case.values())


def _check_parity(path: Path, parity: dict, tolerance: float) -> tuple[float, float]:
    worst, normalised = _worst(parity, "max_abs"), _worst(parity, "normalised")
    if normalised > tolerance:
        raise RuntimeError(f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} ({normalised:.2e} of the "
                           f"output scale) > export.parity_tolerance {tolerance}; see the parity table in the "
                           "export report. A graph bug gives errors of the order of the outputs; raise the "
                           "tolerance only for numerically sensitive (e.g. untrained) models")
    return worst, normalised


def export_detectnet(params: Params, *, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """Retrained (pruned) and phase-1 DetectNet_v2 -> ``exports/detectnet_v2/``."""
    from visionops import atomic, tracking  # noqa: PLC0415
    from visionops.export.detectnet_onnx import INPUT_NAME, export_detectnet_onnx  # noqa: PLC0415
    from visionops.pipeline.detectnet import PHASE1, RETRAINED  # noqa: PLC0415

    net, settings = params.detectnet_v2, params.export
    report: dict[str, Any] = {"family": "detectnet_v2", "models": {}}
    with tracking.stage_run("export_detectnet", "detectnet_v2", settings, params_prefix="export.",
                            experiment_prefix=params.tracking.experiment_prefix, pipeline_params=params) as run, \
            atomic.atomic_dir(root / DETECTNET_DIR) as out:
        models = {}
        for name, checkpoint in (("model", RETRAINED), ("unpruned", PHASE1)):
            model, history = _load_detectnet(root / checkpoint, params)
            models[name] = model
            path = export_detectnet_onnx(model, out / f"{name}.onnx", tuple(net.input_size), list(net.classes),
                                         opset=settings.opset,
                                         extra_metadata={"checkpoint": str(checkpoint), "pruned": bool(history)})
            parity = _detectnet_parity(model, path, params, root)
            worst, normalised = _check_parity(path, parity, settings.parity_tolerance)
            report["models"][name] = {"checkpoint": str(checkpoint), "onnx": f"{name}.onnx",
                                      "bytes": path.stat().st_size, "parity_max_abs_diff": worst,
                                      "parity_normalised": normalised, "parity": parity,
                                      "parameters": sum(p.numel() for p in model.parameters())}
            echo(f"[export_detectnet] {name}.onnx: {path.stat().st_size / 1e6:.1f} MB, "
                 f"max |ORT - PyTorch| {worst:.1e}")
        w, h = net.input_size
        trt = settings.tensorrt
        shapes = {INPUT_NAME: ((1, 3, h, w), (1, 3, h, w), (trt.max_batch, 3, h, w))}
        report["tensorrt"] = _tensorrt_engines(
            out / "model.onnx", out, shapes, trt,
            lambda: detectnet_calibration_batches(params, root, trt.calibration_batches, trt.calibration_batch_size),
            echo)
        report["run_id"] = run.info.run_id
        _finish(report, out, "detectnet_v2", settings.registry, echo)
    return report


# --------------------------------------------------------------------------------------------------
# Sparse4D
# --------------------------------------------------------------------------------------------------


def _load_sparse4d(path: Path, params: Params):
    """The checkpoint's model, after checking that params.yaml describes the same network.

    Compared: the preset name, the input size and every parameter tensor's name and shape against a model built
    from the params (on the meta device: no memory). Inference-only settings (thresholds, top-k) may differ.
    """
    import torch  # noqa: PLC0415

    from visionops.models.sparse4d.model import Sparse4D  # noqa: PLC0415
    from visionops.training.sparse4d_fit import load_sparse4d_checkpoint  # noqa: PLC0415

    model, meta = load_sparse4d_checkpoint(path)
    wanted = params.sparse4d.architecture()
    with torch.device("meta"):
        reference = {k: tuple(v.shape) for k, v in Sparse4D(wanted).state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    diffs = [f"{k}: checkpoint {have.get(k, 'missing')}, params {reference.get(k, 'missing')}"
             for k in sorted(set(have) | set(reference)) if have.get(k) != reference.get(k)]
    if tuple(model.cfg.input_size) != tuple(wanted.input_size):
        diffs.insert(0, f"input_size: checkpoint {list(model.cfg.input_size)}, params {list(wanted.input_size)}")
    if meta.get("preset") not in (None, params.sparse4d.preset):
        diffs.insert(0, f"preset: checkpoint {meta.get('preset')!r}, params {params.sparse4d.preset!r}")
    if diffs:
        raise CheckpointMismatch(
            f"{path} does not match the sparse4d params: {'; '.join(diffs[:5])}"
            f"{f' (+{len(diffs) - 5} more)' if len(diffs) > 5 else ''}. Export with the params it was trained "
            "with (e.g. `visionops params preset NAME`), or retrain")
    return model, meta, wanted


def sparse4d_calibration_batches(onnx_path: Path, root: Path, batches: int) -> Iterator[dict[str, np.ndarray]]:
    """INT8 calibration input: consecutive training frames with the cache they really carry.

    The exported graph runs in ONNX Runtime with the host bank, so after the first frame of each scene the cache
    inputs hold real instance features and anchors: calibrating on zero caches would give the temporal branch a
    zero dynamic range.
    """
    from visionops.export.onnx_tracker import OnnxSparse4DTracker  # noqa: PLC0415
    from visionops.inference.frames import frames_from_ovpkl  # noqa: PLC0415
    from visionops.pipeline.sparse4d import ovpkl_files  # noqa: PLC0415

    tracker = OnnxSparse4DTracker(onnx_path)
    count = 0
    for pkl in ovpkl_files(root, "train"):
        tracker.reset()
        for frame in frames_from_ovpkl(pkl, root, tracker.input_size, max_frames=batches):
            feeds = tracker.feeds(frame)
            yield feeds
            count += 1
            if count >= batches:
                return
            cls, _, _, feature, anchor = tracker.session.run(tracker.fetch, feeds)
            tracker.bank.cache(cls, feature, anchor, track=False)


def _sparse4d_parity(model, path: Path, cameras: int) -> dict[str, Any]:
    import torch  # noqa: PLC0415

    from visionops.export.onnx_io import inference_session  # noqa: PLC0415
    from visionops.export.sparse4d_graph import INPUT_NAMES, Sparse4DFrameGraph, output_names  # noqa: PLC0415
    from visionops.export.sparse4d_onnx import example_inputs  # noqa: PLC0415

    session = inference_session(path)
    graph = Sparse4DFrameGraph(model)
    names = output_names(model.cfg.num_decoder)
    report = {}
    for k, exists in ((1, 0.0), (cameras + 1, 1.0)):
        args = example_inputs(model, k, tuple(model.cfg.input_size), batch=1, seed=k, prev_exists=exists)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(*args)]
        got = session.run(names, {n: a.numpy() for n, a in zip(INPUT_NAMES, args, strict=True)})
        report[f"{k}cams_{'warm' if exists else 'cold'}"] = {
            name: parity_error(g, e, graph.time_interval if name.startswith("prediction")
                               or name == "output_cached_anchor" else None)
            for name, g, e in zip(names, got, expected, strict=True)}
    return report


def export_sparse4d(params: Params, *, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """Trained Sparse4D -> ``exports/sparse4d/model.onnx`` (+ engines)."""
    from visionops import atomic, tracking  # noqa: PLC0415
    from visionops.export.sparse4d_onnx import export_sparse4d_onnx  # noqa: PLC0415
    from visionops.pipeline.sparse4d import MODEL  # noqa: PLC0415

    settings = params.export
    with tracking.stage_run("export_sparse4d", "sparse4d", settings, params_prefix="export.",
                            experiment_prefix=params.tracking.experiment_prefix, pipeline_params=params) as run, \
            atomic.atomic_dir(root / SPARSE4D_DIR) as out:
        model, meta, wanted = _load_sparse4d(root / MODEL, params)
        cfg = model.cfg
        path = export_sparse4d_onnx(model, out / "model.onnx", settings.sparse4d_cameras, tuple(cfg.input_size),
                                    opset=settings.opset, time_interval=settings.sparse4d_time_interval,
                                    class_names=list(meta["classes"]),
                                    extra_metadata={"checkpoint": str(MODEL), "preset": meta.get("preset"),
                                                    # inference settings come from the params, not the checkpoint
                                                    "id_threshold": wanted.score_threshold,
                                                    "num_output": wanted.num_output})
        parity = _sparse4d_parity(model, path, settings.sparse4d_cameras)
        worst, normalised = _check_parity(path, parity, settings.parity_tolerance)
        echo(f"[export_sparse4d] model.onnx: {path.stat().st_size / 1e6:.1f} MB, max |ORT - PyTorch| {worst:.1e} "
             f"(cameras 1 and {settings.sparse4d_cameras + 1}, cold and warm cache)")
        report: dict[str, Any] = {
            "family": "sparse4d",
            "models": {"model": {"checkpoint": str(MODEL), "onnx": "model.onnx", "bytes": path.stat().st_size,
                                 "parity_max_abs_diff": worst, "parity_normalised": normalised, "parity": parity,
                                 "parameters": sum(p.numel() for p in model.parameters())}},
        }
        trt = settings.tensorrt
        w, h = cfg.input_size
        t, c = cfg.num_temp_instances, cfg.embed_dims
        k = settings.sparse4d_cameras
        shapes = {
            "img": ((1, 1, 3, h, w), (1, k, 3, h, w), (1, trt.max_cameras, 3, h, w)),
            "projection_mat": ((1, 1, 4, 4), (1, k, 4, 4), (1, trt.max_cameras, 4, 4)),
            "image_wh": ((1, 1, 2), (1, k, 2), (1, trt.max_cameras, 2)),
            "input_cached_feature": ((1, t, c),) * 3,
            "input_cached_anchor": ((1, t, 11),) * 3,
            "prev_exists": ((1,),) * 3,
            "interval_mask": ((1, 1, 1),) * 3,
        }
        report["tensorrt"] = _tensorrt_engines(
            path, out, shapes, trt, lambda: sparse4d_calibration_batches(path, root, trt.calibration_batches), echo)
        report["run_id"] = run.info.run_id
        _finish(report, out, "sparse4d", settings.registry, echo)
    return report


# --------------------------------------------------------------------------------------------------
# shared
# --------------------------------------------------------------------------------------------------


def _tensorrt_engines(onnx_path: Path, out: Path, shapes, trt_params, calibration, echo) -> dict[str, Any]:
    """Build the configured engines, or report why not (never fails the stage for a missing capability)."""
    from visionops.export.tensorrt import build_engine, make_entropy_calibrator, tensorrt_status  # noqa: PLC0415

    available, reason = tensorrt_status()
    result: dict[str, Any] = {"available": available, "reason": reason, "engines": {}, "skipped": {}}
    for precision in trt_params.precisions:
        if not available:
            result["skipped"][precision] = reason
            continue
        calibrator = make_entropy_calibrator(calibration(), out / "calibration.bin") if precision == "int8" else None
        engine = build_engine(onnx_path, out / f"model.{precision}.engine", precision, shapes,
                              workspace_gb=trt_params.workspace_gb, calibrator=calibrator)
        result["engines"][precision] = engine.name
    echo(f"[export] TensorRT: {'built ' + ', '.join(result['engines']) if result['engines'] else 'skipped'} "
         f"({reason})")
    return result


def _finish(report: dict[str, Any], out: Path, family: str, register: bool, echo) -> None:
    import mlflow  # noqa: PLC0415

    from visionops import atomic, tracking  # noqa: PLC0415
    from visionops.export.registry import log_and_register  # noqa: PLC0415

    if register:
        report["registry"] = log_and_register(out / "model.onnx", family)
        echo(f"[export] registered {report['registry']['name']} v{report['registry']['version']} "
             f"(alias {report['registry']['alias']})")
    models = report["models"]
    mlflow.log_metrics({f"{name}.parity_max_abs_diff": m["parity_max_abs_diff"] for name, m in models.items()}
                       | {f"{name}.onnx_mb": m["bytes"] / 1e6 for name, m in models.items()})
    mlflow.set_tag("tensorrt", "built" if report["tensorrt"]["engines"] else report["tensorrt"]["reason"][:250])
    tracking.log_headline_metrics({"onnx_parity_max_abs_diff": models["model"]["parity_max_abs_diff"]})
    atomic.write_json(out / REPORT, report)
    mlflow.log_artifact(str(out / REPORT))
