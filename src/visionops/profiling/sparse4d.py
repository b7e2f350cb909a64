"""Profile Sparse4D: latency of one multi-camera frame (batch 1) vs the number of cameras.

Inputs are real frames of a raw scene (``data/raw/val/<Scene>``, decoded and prepared exactly as tracking does);
a camera count above the scene's cameras repeats its cameras (same images and calibrations: the cost of a camera
does not depend on which camera it is). Timed calls cycle through the frames.

Steady state, not the cold start: the PyTorch runners keep the instance bank across calls (timestamps advance by
the frame interval, so the temporal path with the cached instances runs, and the bank's top-k and id bookkeeping
are part of the eager time); the ONNX / TensorRT graphs get the cache of a few real frames run through the graph
with :class:`~visionops.export.host_bank.HostInstanceBank` first, ``prev_exists = 1``. The graph time excludes the
host bank (the card's "TensorRT, model only" column).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionops.profiling.backends import ONNX_BACKENDS, TORCH_BACKENDS, make_runner
from visionops.profiling.curve import PointSkipped

STREAM = "profile"


def pick_scene(raw_split_dir: str | os.PathLike) -> Path:
    """The first scene (sorted) of a raw split folder that has ``calibration.json`` and videos."""
    root = Path(raw_split_dir)
    scenes = sorted(p for p in root.glob("*") if (p / "calibration.json").is_file() and any(p.glob("videos/*.mp4")))
    if not scenes:
        raise FileNotFoundError(f"{root}: no raw scene (folder with calibration.json and videos/*.mp4); "
                                "run the download stage (`dvc repro download`)")
    return scenes[0]


def load_frames(scene_dir: str | os.PathLike, input_size: Sequence[int], count: int) -> list:
    """The first ``count`` frames of a raw scene as :class:`~visionops.inference.frames.FrameInputs`."""
    from visionops.inference.frames import frames_from_raw_scene  # noqa: PLC0415

    frames = list(frames_from_raw_scene(scene_dir, input_size, max_frames=count))
    if not frames:
        raise ValueError(f"{scene_dir}: no decodable frame")
    return frames


def tile_cameras(frame: Any, cameras: int) -> dict[str, np.ndarray]:
    """``cameras`` views of one frame, cycling its K real cameras, with a batch axis of 1.

    Returns:
        ``img`` (1, cameras, 3, H, W) float32 normalised, ``projection_mat`` (1, cameras, 4, 4) float32,
        ``image_wh`` (1, cameras, 2) float32 ``[W, H]``.
    """
    index = np.arange(cameras) % len(frame.images)
    return {"img": np.ascontiguousarray(frame.images[index], np.float32)[None],
            "projection_mat": np.asarray(frame.projection_mat[index], np.float32)[None],
            "image_wh": np.asarray(frame.image_wh[index], np.float32)[None]}


def compile_encoder(model: Any) -> Any:
    """A copy of ``model`` whose image encoder (backbone + FPN) is ``torch.compile``-d with dynamic shapes.

    Why not the whole model: the instance bank's Python-side state (cache present or not, id counter, ``.item()``)
    breaks the graph into pieces that recompile per camera count; on a CPU that is minutes per count. The encoder
    is most of the compute and sees cameras as a batch axis, so one dynamic compilation covers every count. A
    copy, so the eager backend keeps timing the uncompiled model.
    """
    import copy  # noqa: PLC0415

    compiled = copy.deepcopy(model)
    compiled.backbone.compile(dynamic=True)
    compiled.neck.compile(dynamic=True)
    return compiled


class Sparse4DWorkload:
    """Sparse4D for :func:`visionops.profiling.curve.profile_curves` (size = number of cameras).

    Args:
        frames: real frames (:class:`FrameInputs`) at the model's input size.
        module: the eager :class:`~visionops.models.sparse4d.model.Sparse4D` (PyTorch backends); None skips them.
        onnx_path: the exported graph (ONNX Runtime backends). engine_path: a TensorRT engine of it.
        device: ``cpu`` or ``cuda``. threads: ONNX Runtime intra-op threads (0 = default).
        frame_interval: seconds between the eager model's frames (the graph has its own baked in).
        prime_frames: graph frames run through the host bank before timing, for a steady-state cache.
    """

    model = "sparse4d"
    size_name = "cameras"

    def __init__(self, frames: Sequence[Any], *, module: Any = None, onnx_path: str | os.PathLike | None = None,
                 engine_path: str | os.PathLike | None = None, device: str = "cpu", threads: int = 0,
                 frame_interval: float = 1 / 30, prime_frames: int = 3) -> None:
        if not frames:
            raise ValueError("Sparse4D profiling needs at least one real frame")
        self.frames = list(frames)
        self.module, self.onnx_path, self.engine_path = module, onnx_path, engine_path
        self.device, self.threads = device, threads
        self.frame_interval, self.prime_frames = frame_interval, prime_frames
        self._tick = 0

    def runner(self, backend: str) -> Any:
        if backend in TORCH_BACKENDS and self.module is not None:
            self.module.reset(restart_ids=True)  # every backend starts from an empty bank
        return make_runner(backend, self.device, module=self.module, onnx_path=self.onnx_path,
                           engine_path=self.engine_path, threads=self.threads, torch_call=self._torch_call,
                           compile_fn=compile_encoder)

    def _torch_call(self, target: Any, inputs: dict[str, Any]) -> Any:
        import torch  # noqa: PLC0415

        # A fresh, later timestamp every call: the bank sees a 30 FPS stream and keeps its cache (steady state).
        self._tick += 1
        timestamp = torch.tensor([self._tick * self.frame_interval], dtype=torch.float64,
                                 device=inputs["images"].device)
        return target(images=inputs["images"], projection_mat=inputs["projection_mat"], image_wh=inputs["image_wh"],
                      timestamp=timestamp, scene_ids=[STREAM])

    def inputs(self, backend: str, runner: Any, size: int) -> list[Any]:
        tiles = [tile_cameras(frame, size) for frame in self.frames]
        if backend in TORCH_BACKENDS:
            return [{"images": t["img"], "projection_mat": t["projection_mat"], "image_wh": t["image_wh"]}
                    for t in tiles]
        if backend in ONNX_BACKENDS:
            self._check_graph_inputs(runner, size)
        cache = self._steady_cache(runner, tiles)
        return [{**t, **cache} for t in tiles]

    def _check_graph_inputs(self, runner: Any, size: int) -> None:
        shape = dict((name, shape) for name, shape, _ in runner.inputs).get("img")
        if shape is None:
            raise ValueError(f"{runner.path}: no 'img' input; not a Sparse4D export (re-export it)")
        cams = shape[1]
        if isinstance(cams, int) and cams != size:
            raise PointSkipped(f"{runner.path} was exported for exactly {cams} cameras (fixed axis); "
                               "export with a dynamic num_cams axis to time other counts")
        h, w = self.frames[0].images.shape[-2:]
        if all(isinstance(v, int) for v in shape[-2:]) and tuple(shape[-2:]) != (h, w):
            raise ValueError(f"{runner.path}: exported for {shape[-1]}x{shape[-2]} input, the frames are {w}x{h}; "
                             "export and profile the same checkpoint / input size")

    def _host_bank(self):
        from visionops.export.host_bank import HostInstanceBank  # noqa: PLC0415
        from visionops.export.onnx_io import read_metadata  # noqa: PLC0415

        if self.onnx_path is None:
            raise ValueError("the graph backends need the ONNX file (its metadata sizes the host bank)")
        meta = read_metadata(self.onnx_path)
        return HostInstanceBank(meta["num_anchor"], meta["num_temp_instances"], meta["embed_dims"],
                                meta.get("confidence_decay", 0.8), meta.get("max_time_interval", 2.0),
                                meta.get("id_threshold", 0.05)), float(meta.get("time_interval", self.frame_interval))

    def _steady_cache(self, runner: Any, tiles: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Cache inputs after ``prime_frames`` real frames through graph + host bank (untimed)."""
        bank, interval = self._host_bank()
        for i in range(max(1, self.prime_frames)):
            cache = bank.inputs([i * interval], [STREAM])
            out = runner.run({**tiles[i % len(tiles)], **cache.feeds()})
            bank.cache(out["classification2"], out["output_cached_feature"], out["output_cached_anchor"],
                       track=False)
        return bank.inputs([max(1, self.prime_frames) * interval], [STREAM]).feeds()
