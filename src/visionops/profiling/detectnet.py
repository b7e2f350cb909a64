"""Profile DetectNet_v2: latency of one batch vs batch size (the DashCamNet card's method).

Inputs are real validation images (``data/kitti/val/images``) preprocessed as training and evaluation do (RGB,
resized to the network input, scaled 1/255) and tiled into batches; timed calls cycle through a few distinct
batches. The PyTorch runners time :class:`~visionops.models.detectnet_v2.model.DetectNetExport` (sigmoid coverage +
bbox), i.e. the same computation as the exported graph.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionops.profiling.backends import ONNX_BACKENDS, TORCH_BACKENDS, make_runner

MAX_DISTINCT_BATCHES = 4


def load_images(split_dir: str | os.PathLike, class_names: Sequence[str], input_size: Sequence[int],
                count: int) -> np.ndarray:
    """(K, 3, H, W) float32 in [0, 1]: the first ``count`` images (sorted) of a KITTI split, at ``input_size``.

    Raises:
        FileNotFoundError: no KITTI split there (names the folder and the stage that writes it).
    """
    from visionops.data.kitti_dataset import KittiDetectionDataset  # noqa: PLC0415

    dataset = KittiDetectionDataset(split_dir, class_names, (int(input_size[0]), int(input_size[1])))
    if len(dataset) == 0:
        raise FileNotFoundError(f"{Path(split_dir) / 'images'}: no images; run the convert stage")
    images = [dataset.sample(i)[0].transpose(2, 0, 1) for i in range(min(count, len(dataset)))]
    return np.ascontiguousarray(np.stack(images), dtype=np.float32)


def batches(images: np.ndarray, batch: int) -> list[np.ndarray]:
    """Up to :data:`MAX_DISTINCT_BATCHES` batches of ``batch`` images, consecutive images cycling through the set."""
    k = len(images)
    distinct = max(1, min(MAX_DISTINCT_BATCHES, k // batch))
    return [np.ascontiguousarray(images[(j * batch + np.arange(batch)) % k]) for j in range(distinct)]


def _call_images(target: Any, inputs: dict[str, Any]) -> Any:
    return target(inputs["images"])


class DetectNetWorkload:
    """DetectNet_v2 for :func:`visionops.profiling.curve.profile_curves` (size = batch).

    Args:
        images: (K, 3, H, W) float32 in [0, 1] (see :func:`load_images`).
        module: a :class:`DetectNetV2` (wrapped in :class:`DetectNetExport` here); None skips the PyTorch backends.
        onnx_path / engine_path: exported graph / TensorRT engine. device: ``cpu`` | ``cuda``. threads: ORT threads.
    """

    model = "detectnet_v2"
    size_name = "batch"

    def __init__(self, images: np.ndarray, *, module: Any = None, onnx_path: str | os.PathLike | None = None,
                 engine_path: str | os.PathLike | None = None, device: str = "cpu", threads: int = 0) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (K, 3, H, W), got {images.shape}")
        self.images = images
        if module is not None:
            from visionops.models.detectnet_v2.model import DetectNetExport  # noqa: PLC0415

            module = DetectNetExport(module)
        self.module, self.onnx_path, self.engine_path = module, onnx_path, engine_path
        self.device, self.threads = device, threads

    def runner(self, backend: str) -> Any:
        return make_runner(backend, self.device, module=self.module, onnx_path=self.onnx_path,
                           engine_path=self.engine_path, threads=self.threads, torch_call=_call_images)

    def inputs(self, backend: str, runner: Any, size: int) -> list[Any]:
        chunks = batches(self.images, size)
        if backend in TORCH_BACKENDS:
            return [{"images": chunk} for chunk in chunks]
        name = self._input_name(runner) if backend in ONNX_BACKENDS else "input_1"
        return [{name: chunk} for chunk in chunks]

    def _input_name(self, runner: Any) -> str:
        if len(runner.inputs) != 1:
            raise ValueError(f"{runner.path}: expected one image input, got {[n for n, _, _ in runner.inputs]}")
        name, shape, _ = runner.inputs[0]
        h, w = self.images.shape[-2:]
        if len(shape) != 4 or (all(isinstance(v, int) for v in shape[-2:]) and tuple(shape[-2:]) != (h, w)):
            raise ValueError(f"{runner.path}: input {name!r} has shape {shape}, the images are (N, 3, {h}, {w}); "
                             "export and profile the same model / input size")
        return name
