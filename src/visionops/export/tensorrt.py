"""TensorRT engines from our ONNX files, behind a capability check (TensorRT and a CUDA GPU).

* :func:`tensorrt_status` says whether engines can be built here and, if not, why (the export and profile stages
  record that reason and go on with ONNX Runtime).
* :func:`build_engine` parses an ONNX file and builds a serialized engine for FP32, FP16 or INT8 with one
  optimisation profile (min / opt / max shape per dynamic input). INT8 uses an entropy calibrator (TensorRT's
  ``IInt8EntropyCalibrator2``, as TAO's DetectNet_v2 deployment) fed with real dataset batches, and writes the
  calibration cache next to the engine so later builds (and ``trtexec --calib``, DeepStream's
  ``int8-calib-file``) reuse it.
* :class:`TensorRTRunner` executes an engine on numpy feeds (``execute_async_v3`` with torch CUDA buffers).

Engines are specific to the GPU model and TensorRT version that built them; the file name says the precision.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionops.atomic import write_bytes

PRECISIONS = ("fp32", "fp16", "int8")
Shapes = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]
"""input name -> (min, opt, max) shapes of the optimisation profile."""


def tensorrt_status() -> tuple[bool, str]:
    """(available, reason): TensorRT importable and a CUDA device visible to torch."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        return False, f"tensorrt is not installed ({exc}); pip install 'visionops[tensorrt]' on a CUDA machine"
    import torch  # noqa: PLC0415

    if not torch.cuda.is_available():
        return False, f"TensorRT {trt.__version__} is installed but no CUDA GPU is available"
    return True, f"TensorRT {trt.__version__} on {torch.cuda.get_device_name(0)}"


def _trt():
    available, reason = tensorrt_status()
    if not available:
        raise RuntimeError(reason)
    return importlib.import_module("tensorrt")


def make_entropy_calibrator(batches: Iterable[Mapping[str, np.ndarray]], cache_path: str | Path):
    """An ``IInt8EntropyCalibrator2`` over ``batches`` (dicts input name -> array, same batch size each).

    The cache is read when it exists (no recalibration) and written after calibration.
    """
    trt = _trt()
    import torch  # noqa: PLC0415

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.cache_path = Path(cache_path)
            self.iterator = iter(batches)
            self.first = next(self.iterator, None)
            self.buffers: dict[str, torch.Tensor] = {}

        def get_batch_size(self) -> int:
            return 0 if self.first is None else int(next(iter(self.first.values())).shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch, self.first = (self.first, None) if self.first is not None else (next(self.iterator, None), None)
            if batch is None:
                return None
            for name in names:
                self.buffers[name] = torch.as_tensor(np.ascontiguousarray(batch[name])).cuda()
            return [int(self.buffers[name].data_ptr()) for name in names]

        def read_calibration_cache(self) -> bytes | None:
            return self.cache_path.read_bytes() if self.cache_path.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            write_bytes(self.cache_path, bytes(cache))

    return EntropyCalibrator()


def build_engine(onnx_path: str | Path, engine_path: str | Path, precision: str, shapes: Shapes, *,
                 workspace_gb: float = 4.0, calibrator: Any = None) -> Path:
    """Build and write ``engine_path`` (atomically). ``calibrator`` is required for INT8."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8" and calibrator is None:
        raise ValueError("INT8 needs a calibrator (make_entropy_calibrator over dataset frames)")
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT could not parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, tuple(low), tuple(opt), tuple(high))
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16 rather than FP32
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build a {precision} engine from {onnx_path} (see its log above)")
    return write_bytes(engine_path, bytes(serialized))


class TensorRTRunner:
    """Run an engine on numpy feeds; outputs come back as numpy (host copies, synchronised).

    Raises ValueError when an input shape is outside the engine's optimisation profile (e.g. more cameras than
    the engine was built for), naming the input and the allowed range.
    """

    def __init__(self, engine_path: str | Path) -> None:
        trt = _trt()
        import torch  # noqa: PLC0415

        self.torch, self.path = torch, Path(engine_path)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{self.path}: not a TensorRT engine for this GPU / TensorRT version; rebuild it")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self._dtype: Callable[[str], Any] = lambda n: torch.from_numpy(
            np.zeros(0, dtype=trt.nptype(self.engine.get_tensor_dtype(n)))).dtype
        self.stream = torch.cuda.Stream()

    def profile_range(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        return tuple(low), tuple(high)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        keep = []
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name])
            low, high = self.profile_range(name)
            if any(s < lo or s > hi for s, lo, hi in zip(array.shape, low, high, strict=True)):
                raise ValueError(f"{self.path}: input {name} has shape {array.shape}, outside the engine's profile "
                                 f"{low}..{high}; rebuild the engine for it")
            tensor = torch.as_tensor(array).to("cuda", self._dtype(name))
            keep.append(tensor)
            self.context.set_input_shape(name, tuple(array.shape))
            self.context.set_tensor_address(name, int(tensor.data_ptr()))
        results = {}
        for name in self.outputs:
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtype(name), device="cuda")
            results[name] = out
            self.context.set_tensor_address(name, int(out.data_ptr()))
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        self.stream.synchronize()
        return {name: out.cpu().numpy() for name, out in results.items()}
