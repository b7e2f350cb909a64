"""One runner per backend, or the reason it cannot run here.

A *runner* turns prepared inputs into outputs on its device: ``prepared = runner.prepare(inputs)`` (host -> device
copies, outside the timed region), then ``runner(prepared)`` is one timed inference, and ``runner.synchronize()``
waits for queued device work. Model-specific code (:mod:`.sparse4d`, :mod:`.detectnet`) builds the inputs:
keyword tensors for the PyTorch runners, the ONNX input names for ONNX Runtime and TensorRT.

Backends:

* ``pytorch``          - the eager module, ``torch.inference_mode``.
* ``pytorch_compiled`` - ``torch.compile`` (inductor, dynamic shapes; for Sparse4D the image encoder, see
                         :func:`.sparse4d.compile_encoder`); a failure to compile is reported as a skip.
* ``onnxruntime_cpu``  - ONNX Runtime, CPUExecutionProvider, numpy in and out.
* ``onnxruntime_cuda`` - ONNX Runtime, CUDAExecutionProvider with I/O binding (inputs resident on the GPU, so the
                         timing is the model, not PCIe copies), where onnxruntime-gpu and a GPU are present.
* ``tensorrt``         - an engine built by the export stage, via :mod:`visionops.export.tensorrt`, where TensorRT
                         and a GPU are present; inputs resident on the GPU as well.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from visionops.config.profile_params import BACKEND_NAMES

TORCH_BACKENDS = ("pytorch", "pytorch_compiled")
ONNX_BACKENDS = ("onnxruntime_cpu", "onnxruntime_cuda")


class BackendSkipped(RuntimeError):
    """This backend cannot run here; ``str(exc)`` is the reason shown in the report."""


class PointSkipped(RuntimeError):
    """This size cannot run on this runner (a fixed camera axis, outside an engine's shape profile); the curve
    goes on with the other sizes."""


def check_backend_name(name: str) -> str:
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKEND_NAMES)}")
    return name


def set_threads(threads: int) -> None:
    """Intra-op threads of PyTorch (0 = leave the library default)."""
    import torch  # noqa: PLC0415

    if threads > 0:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------------


class TorchRunner:
    """A ``torch.nn.Module`` called with keyword inputs on ``device``.

    Args:
        module: the model (put in eval mode here).
        device: ``cpu`` or ``cuda``.
        compiled: compile it (compilation happens on the first call, outside the timed region).
        call: how to call the module with the prepared inputs; default ``module(**inputs)``.
        compile_fn: how to compile; default ``torch.compile(module, dynamic=True)`` (dynamic shapes: one
            compilation serves every batch size / camera count instead of one per size).
    """

    def __init__(self, module: Any, device: str = "cpu", *, compiled: bool = False,
                 call: Callable[[Any, dict[str, Any]], Any] | None = None,
                 compile_fn: Callable[[Any], Any] | None = None) -> None:
        import torch  # noqa: PLC0415

        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.compiled = compiled
        if compiled:
            self.target = (compile_fn or (lambda m: torch.compile(m, dynamic=True)))(self.module)
        else:
            self.target = self.module
        self._call = call or (lambda target, inputs: target(**inputs))

    def prepare(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Numpy arrays / tensors -> tensors on the device (floats keep their dtype); other values unchanged."""
        import torch  # noqa: PLC0415

        out = {}
        for name, value in inputs.items():
            if isinstance(value, np.ndarray):
                value = torch.from_numpy(np.ascontiguousarray(value))
            out[name] = value.to(self.device) if isinstance(value, torch.Tensor) else value
        return out

    def __call__(self, prepared: dict[str, Any]) -> Any:
        import torch  # noqa: PLC0415

        with torch.inference_mode():
            return self._call(self.target, prepared)

    def synchronize(self) -> None:
        import torch  # noqa: PLC0415

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def torch_status(backend: str, device: str) -> tuple[bool, str]:
    """Whether a PyTorch backend can run on ``device``."""
    import torch  # noqa: PLC0415

    if device == "cuda" and not torch.cuda.is_available():
        return False, "torch sees no CUDA GPU"
    if backend == "pytorch_compiled":
        if not hasattr(torch, "compile"):
            return False, f"torch {torch.__version__} has no torch.compile"
        if device == "cpu" and not _has_compiler():
            return False, "torch.compile on CPU needs a C++ compiler (gcc/clang) on PATH; none found"
    return True, ""


def _has_compiler() -> bool:
    import shutil  # noqa: PLC0415

    return any(shutil.which(cc) for cc in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if cc)


# --------------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------------

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
              "tensor(uint8)": np.uint8}


class OrtRunner:
    """An ONNX Runtime session on one provider.

    Args:
        path: the ``.onnx`` file (checked with ``onnx.checker`` first: a damaged file is an error naming it).
        provider: ``cpu`` or ``cuda``.
        threads: intra-op threads, 0 = ONNX Runtime's default (one per physical core).

    Attributes:
        inputs: ``[(name, shape, numpy dtype)]`` of the graph; a dynamic axis is a string (``"num_cams"``).
        outputs: output names.
    """

    def __init__(self, path: str | os.PathLike, provider: str = "cpu", threads: int = 0) -> None:
        from visionops.export.onnx_io import inference_session  # noqa: PLC0415

        self.path = Path(path)
        self.provider = provider
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else \
            ["CPUExecutionProvider"]
        self.session = inference_session(self.path, providers=providers, threads=threads or None)
        if provider == "cuda" and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise BackendSkipped(f"ONNX Runtime did not enable CUDA for {self.path} "
                                 f"(session providers: {self.session.get_providers()})")
        self.inputs = [(i.name, list(i.shape), _ORT_TYPES.get(i.type, np.float32)) for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def _cast(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [name for name, _, _ in self.inputs if name not in feeds]
        if missing:
            raise ValueError(f"{self.path}: inputs {missing} not provided (graph inputs: "
                             f"{[n for n, _, _ in self.inputs]})")
        return {name: np.ascontiguousarray(feeds[name], dtype=dtype) for name, _, dtype in self.inputs}

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """Cast to the graph's dtypes; on CUDA, copy to the GPU once and bind inputs and outputs there."""
        arrays = self._cast(feeds)
        if self.provider != "cuda":
            return arrays
        import onnxruntime as ort  # noqa: PLC0415

        binding = self.session.io_binding()
        for name, array in arrays.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        for name in self.outputs:
            binding.bind_output(name, "cuda")
        return binding

    def __call__(self, prepared: Any) -> Any:
        if self.provider == "cuda":
            self.session.run_with_iobinding(prepared)
            return prepared
        return self.session.run(None, prepared)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Untimed convenience: numpy feeds -> ``{output name: numpy array}`` (host) on this provider."""
        result = self(self.prepare(feeds))
        arrays = result.copy_outputs_to_cpu() if self.provider == "cuda" else result
        return dict(zip(self.outputs, arrays, strict=True))

    def synchronize(self) -> None:
        return None  # run / run_with_iobinding return after the device finished


def onnxruntime_status(backend: str, device: str) -> tuple[bool, str]:
    """Whether an ONNX Runtime backend can run here (package, provider, device choice)."""
    try:
        import onnxruntime as ort  # noqa: PLC0415
    except ImportError as exc:
        return False, f"onnxruntime is not installed ({exc}); pip install onnxruntime (or onnxruntime-gpu)"
    if backend == "onnxruntime_cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return False, (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: "
                           f"{ort.get_available_providers()}); install onnxruntime-gpu on a CUDA machine")
        if device == "cpu":
            return False, "the profile runs on the CPU (profile.device: cpu, or no CUDA GPU)"
    return True, ""


# --------------------------------------------------------------------------------------------------
# TensorRT
# --------------------------------------------------------------------------------------------------


def tensorrt_status(device: str) -> tuple[bool, str]:
    """``visionops.export.tensorrt.tensorrt_status()`` (TensorRT importable and a CUDA GPU), and the device choice."""
    try:
        module = importlib.import_module("visionops.export.tensorrt")
    except ImportError as exc:
        return False, f"visionops.export.tensorrt cannot be imported ({exc})"
    available, reason = module.tensorrt_status()
    if not available:
        return False, str(reason)
    if device == "cpu":
        return False, "the profile runs on the CPU (profile.device: cpu, or no CUDA GPU)"
    return True, ""


class TrtRunner:
    """A TensorRT engine of the export stage (loaded by ``visionops.export.tensorrt.TensorRTRunner``).

    Timed calls run on inputs already resident on the GPU and leave the outputs there (the card's "model only"
    latency; the export module's own ``__call__`` copies numpy in and out, which :meth:`run` uses for the
    untimed state priming). A size outside the engine's optimisation profile is a :class:`PointSkipped`.
    """

    def __init__(self, engine_path: str | os.PathLike) -> None:
        module = importlib.import_module("visionops.export.tensorrt")
        self.path = Path(engine_path)
        self.runner = module.TensorRTRunner(self.path)

    def _torch_dtype(self, name: str):
        import tensorrt as trt  # noqa: PLC0415
        import torch  # noqa: PLC0415

        return torch.from_numpy(np.zeros(0, dtype=trt.nptype(self.runner.engine.get_tensor_dtype(name)))).dtype

    def check(self, feeds: Mapping[str, np.ndarray]) -> None:
        """:class:`PointSkipped` when a feed's shape is outside the engine's optimisation profile."""
        for name in self.runner.inputs:
            shape = np.shape(feeds[name])
            low, high = self.runner.profile_range(name)
            if len(shape) != len(low) or any(s < lo or s > hi for s, lo, hi in zip(shape, low, high, strict=True)):
                raise PointSkipped(f"{self.path}: input {name} shape {tuple(shape)} is outside the engine's profile "
                                   f"{tuple(low)}..{tuple(high)} (build the engine for it: export stage)")

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Check the shapes against the engine's profile, then copy the inputs to the GPU once."""
        import torch  # noqa: PLC0415

        self.check(feeds)
        return {name: torch.as_tensor(np.ascontiguousarray(feeds[name])).to("cuda", self._torch_dtype(name))
                for name in self.runner.inputs}

    def __call__(self, bound: dict[str, Any]) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        context = self.runner.context
        for name, tensor in bound.items():
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, int(tensor.data_ptr()))
        outputs = {}
        for name in self.runner.outputs:
            out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=self._torch_dtype(name), device="cuda")
            context.set_tensor_address(name, int(out.data_ptr()))
            outputs[name] = out
        if not context.execute_async_v3(self.runner.stream.cuda_stream):
            raise RuntimeError(f"{self.path}: TensorRT execution failed")
        return outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Untimed: numpy feeds -> numpy outputs (host copies)."""
        self.check(feeds)
        return dict(self.runner(feeds))

    def synchronize(self) -> None:
        import torch  # noqa: PLC0415

        torch.cuda.synchronize()  # the engine's stream and the default stream of the input copies


# --------------------------------------------------------------------------------------------------
# availability + construction
# --------------------------------------------------------------------------------------------------


def backend_status(backend: str, device: str, *, onnx_path: str | os.PathLike | None = None,
                   engine_path: str | os.PathLike | None = None, has_module: bool = True) -> tuple[bool, str]:
    """``(True, "")`` when ``backend`` can run on ``device`` with the given files, else ``(False, reason)``.

    A missing file is a skip whose reason names the file and the command that writes it; a damaged file is not
    detected here (opening it raises, naming the file).
    """
    check_backend_name(backend)
    if backend in TORCH_BACKENDS:
        if not has_module:
            return False, "no PyTorch model given (pass the checkpoint)"
        return torch_status(backend, device)
    if backend in ONNX_BACKENDS:
        ok, reason = onnxruntime_status(backend, device)
        if not ok:
            return ok, reason
        if onnx_path is None:
            return False, "no ONNX file given"
        if not Path(onnx_path).is_file():
            return False, f"{onnx_path}: ONNX file not found (run `dvc repro export` or `visionops export`)"
        return True, ""
    ok, reason = tensorrt_status(device)
    if not ok:
        return ok, reason
    if engine_path is None or not Path(engine_path).is_file():
        return False, f"{engine_path}: no TensorRT engine (the export stage builds it where TensorRT and a GPU exist)"
    return True, ""


def make_runner(backend: str, device: str, *, module: Any = None, onnx_path: str | os.PathLike | None = None,
                engine_path: str | os.PathLike | None = None, threads: int = 0,
                torch_call: Callable[[Any, dict[str, Any]], Any] | None = None,
                compile_fn: Callable[[Any], Any] | None = None):
    """The runner of ``backend`` (see the module docstring); raises :class:`BackendSkipped` with the reason."""
    ok, reason = backend_status(backend, device, onnx_path=onnx_path, engine_path=engine_path,
                                has_module=module is not None)
    if not ok:
        raise BackendSkipped(reason)
    if backend in TORCH_BACKENDS:
        return TorchRunner(module, device, compiled=backend == "pytorch_compiled", call=torch_call,
                           compile_fn=compile_fn)
    if backend in ONNX_BACKENDS:
        return OrtRunner(onnx_path, "cuda" if backend == "onnxruntime_cuda" else "cpu", threads)
    try:
        return TrtRunner(engine_path)
    except RuntimeError as exc:  # an engine of another GPU / TensorRT version cannot be loaded here
        raise BackendSkipped(str(exc)) from None
