"""``visionops infer ...``: run a trained model over a scene and write its tracks.

Registered in the main CLI lazily (``"infer": "visionops.inference.commands:infer"``). Only click is imported
at module level; torch and the model load when a command runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


@click.group("infer")
def infer() -> None:
    """Run trained models on scenes (AI City 2025 track files)."""


def _device(name: str):
    import torch  # noqa: PLC0415

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine", param_hint="--device")
    return device


def _onnx_providers(device: str) -> list[str]:
    """ONNX Runtime providers for a --device value (CUDA first where asked and available)."""
    import onnxruntime as ort  # noqa: PLC0415

    if device == "cpu":
        return ["CPUExecutionProvider"]
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device.startswith("cuda") and not cuda:
        raise click.BadParameter("this onnxruntime has no CUDAExecutionProvider", param_hint="--device")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]


@infer.command("sparse4d")
@click.option("--checkpoint", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Trained Sparse4D checkpoint (train_sparse4d's model.ckpt): runs in PyTorch.")
@click.option("--onnx", "onnx_path", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Exported Sparse4D graph (export's exports/sparse4d/model.onnx): runs in ONNX Runtime with the "
                   "instance bank on the host. Give --checkpoint or --onnx.")
@click.option("--scene", "scene", required=True, type=click.Path(exists=True, path_type=Path),
              help="A raw scene folder (videos/ + calibration.json), or one converted OVPKL group file (.pkl).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="AI City 11-column track file to write (atomically).")
@click.option("--score-threshold", default=0.2, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Minimum raw class probability of a written detection (the format has no confidence "
                   "column; 0.2 = the official tracking threshold, the card's decoder uses 0.05).")
@click.option("--input-size", nargs=2, type=click.IntRange(16, 7680), default=None, metavar="W H",
              help="Network input size in pixels; default: the checkpoint's.")
@click.option("--frame-step", default=1, show_default=True, type=click.IntRange(1), help="Use every n-th frame.")
@click.option("--max-frames", default=None, type=click.IntRange(1), help="Stop after this many frames.")
@click.option("--camera", "cameras", multiple=True, help="Camera id to use (repeatable); default: every video.")
@click.option("--scene-id", default=None, type=int,
              help="Scene id of column 0; default: from the scene name (Warehouse_017 -> 17).")
@click.option("--data-root", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="OVPKL input only: folder the frame-store paths are relative to.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def sparse4d_command(checkpoint: Path | None, onnx_path: Path | None, scene: Path, out_path: Path,
                     score_threshold: float, input_size: tuple[int, int] | None, frame_step: int,
                     max_frames: int | None, cameras: tuple[str, ...], scene_id: int | None, data_root: Path,
                     device: str, progress: bool | None) -> None:
    """Track the objects of one scene with a trained Sparse4D and write the AI City track file."""
    import warnings  # noqa: PLC0415

    from visionops.data.schema import SchemaError  # noqa: PLC0415
    from visionops.data.video import VideoDecodeError  # noqa: PLC0415
    from visionops.evaluation.aicity_format import TrackFileError, scene_id_from_name  # noqa: PLC0415
    from visionops.inference.frames import frames_from_ovpkl, frames_from_raw_scene  # noqa: PLC0415
    from visionops.inference.stream import stream_scene  # noqa: PLC0415
    from visionops.inference.tracks import write_scene_tracks  # noqa: PLC0415
    from visionops.training.sparse4d_fit import load_sparse4d_checkpoint  # noqa: PLC0415

    if (checkpoint is None) == (onnx_path is None):
        raise click.UsageError("give exactly one of --checkpoint (PyTorch) and --onnx (ONNX Runtime)")
    if onnx_path is not None:
        from visionops.export.onnx_io import ExportError  # noqa: PLC0415
        from visionops.export.onnx_tracker import OnnxSparse4DTracker  # noqa: PLC0415

        try:
            model = OnnxSparse4DTracker(onnx_path, providers=_onnx_providers(device))
        except ExportError as exc:
            raise click.ClickException(str(exc)) from None
        classes, exported = model.class_names, model.input_size
        if input_size and tuple(input_size) != exported:
            raise click.UsageError(f"--input-size {input_size[0]} {input_size[1]}: {onnx_path} was exported for "
                                   f"{exported[0]}x{exported[1]}")
        size = exported
    else:
        model, meta = load_sparse4d_checkpoint(checkpoint)
        classes = list(meta["classes"])
        size = tuple(input_size) if input_size else tuple(meta["input_size"])
        model = model.to(_device(device))

    ovpkl = scene.is_file()
    if ovpkl:
        from visionops.data.ovpkl import load_ovpkl  # noqa: PLC0415

        if frame_step != 1 or cameras:
            raise click.UsageError("--frame-step and --camera apply to raw scenes, not to an OVPKL file")
        scene_name = str(load_ovpkl(scene)["metadata"].get("scene", scene.name.split("+")[0]))
        frames = frames_from_ovpkl(scene, data_root, size, max_frames=max_frames)
    else:
        scene_name = scene.resolve().name
        frames = frames_from_raw_scene(scene, size, cameras=list(cameras) or None, frame_step=frame_step,
                                       max_frames=max_frames)
    if scene_id is None:
        scene_id = scene_id_from_name(scene_name)
        if scene_id is None:
            raise click.UsageError(f"cannot tell the scene id of {scene_name!r} (not a 2025 scene name); "
                                   "pass --scene-id")

    counted: list[int] = []

    def counting(predictions):
        for prediction in predictions:
            counted.append(len(prediction))
            yield prediction

    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = stream_scene(model, frames, score_threshold=score_threshold, progress=show,
                                  total=max_frames)
            path, rows = write_scene_tracks(out_path, counting(stream), scene_id, classes)
    except (FileNotFoundError, SchemaError, TrackFileError, ValueError, VideoDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - started
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    frames_done = len(counted)
    ids = len({(int(c), int(o)) for c, o in rows[:, 1:3]}) if len(rows) else 0
    fps = frames_done / elapsed if elapsed > 0 else float("nan")
    click.echo(f"{path}: {frames_done} frames, {len(rows)} track rows, {ids} track ids "
               f"(scene {scene_name}, id {scene_id}), {fps:.2f} frames/s ({1000 / fps if fps else 0:.0f} ms/frame)")
