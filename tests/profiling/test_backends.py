"""Backends on a tiny model: PyTorch eager / compiled and ONNX Runtime agree; missing pieces skip with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionops.export.onnx_io import ExportError
from visionops.profiling.backends import BackendSkipped, OrtRunner, backend_status, make_runner


def _images(n=3):
    return np.random.default_rng(0).random((n, 3, 16, 32), dtype=np.float32)


def _call(target, inputs):
    return target(inputs["images"])


def test_eager_and_onnxruntime_agree(tiny_net, tiny_onnx):
    images = _images()
    eager = make_runner("pytorch", "cpu", module=tiny_net, torch_call=_call)
    cov_t, bbox_t = eager(eager.prepare({"images": images}))
    ort = make_runner("onnxruntime_cpu", "cpu", onnx_path=tiny_onnx, threads=1)
    assert isinstance(ort, OrtRunner)
    assert ort.inputs == [("input_1", ["batch", 3, 16, 32], np.float32)]
    out = ort.run({"input_1": images.astype(np.float64)})  # cast to the graph's dtype on prepare
    np.testing.assert_allclose(out["cov"], cov_t.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["bbox"], bbox_t.numpy(), atol=1e-5)
    # the timed call returns the raw session outputs (no dict building inside the timed region)
    assert len(ort(ort.prepare({"input_1": images}))) == 2


def test_compiled_matches_eager(tiny_net):
    images = _images(2)
    eager = make_runner("pytorch", "cpu", module=tiny_net, torch_call=_call)
    # aot_eager keeps the test fast; the profiler's default is inductor (same TorchRunner path)
    compiled = make_runner("pytorch_compiled", "cpu", module=tiny_net, torch_call=_call,
                           compile_fn=lambda m: torch.compile(m, backend="aot_eager", dynamic=True))
    assert compiled.compiled and compiled.target is not tiny_net
    for a, b in zip(eager(eager.prepare({"images": images})), compiled(compiled.prepare({"images": images})),
                    strict=True):
        torch.testing.assert_close(a, b)


def test_missing_onnx_is_a_skip_naming_the_file(tmp_path):
    missing = tmp_path / "exports" / "model.onnx"
    ok, reason = backend_status("onnxruntime_cpu", "cpu", onnx_path=missing)
    assert not ok and str(missing) in reason and "dvc repro export" in reason
    with pytest.raises(BackendSkipped, match="ONNX file not found"):
        make_runner("onnxruntime_cpu", "cpu", onnx_path=missing)


def test_corrupt_onnx_is_an_error_naming_the_file(tmp_path, tiny_onnx):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(tiny_onnx.read_bytes()[:200])
    with pytest.raises(ExportError, match=r"model\.onnx: not a valid ONNX model"):
        make_runner("onnxruntime_cpu", "cpu", onnx_path=broken)


def test_gpu_backends_skip_with_reason_here(tiny_onnx):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers() and torch.cuda.is_available():
        pytest.skip("a CUDA machine: the GPU backends run here")
    ok, reason = backend_status("onnxruntime_cuda", "cpu", onnx_path=tiny_onnx)
    assert not ok and ("CUDAExecutionProvider" in reason or "CPU" in reason)
    ok, reason = backend_status("tensorrt", "cpu", engine_path="exports/x/model.fp16.engine")
    assert not ok and reason  # TensorRT missing (or no GPU): the reason is reported, never empty
    ok, reason = backend_status("pytorch", "cuda", has_module=True)
    assert not ok and "CUDA" in reason


def test_torch_backend_without_model_and_unknown_backend():
    ok, reason = backend_status("pytorch", "cpu", has_module=False)
    assert not ok and "checkpoint" in reason
    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        backend_status("openvino", "cpu")


def test_tensorrt_sizes_outside_the_engine_profile_are_point_skips(monkeypatch, tmp_path):
    """The shape check runs before anything touches a GPU, so it is testable without TensorRT."""
    import visionops.export.tensorrt as trt_module
    from visionops.profiling.backends import PointSkipped, TrtRunner

    class FakeEngineRunner:
        inputs = ["img", "prev_exists"]

        def __init__(self, path):
            self.path = path

        def profile_range(self, name):
            return ((1, 1, 3, 32, 64), (1, 4, 3, 32, 64)) if name == "img" else ((1,), (1,))

        def __call__(self, feeds):
            return {"out": np.zeros(1)}

    monkeypatch.setattr(trt_module, "TensorRTRunner", FakeEngineRunner)
    runner = TrtRunner(tmp_path / "model.fp16.engine")
    ok = {"img": np.zeros((1, 4, 3, 32, 64), np.float32), "prev_exists": np.ones(1, np.float32)}
    assert runner.run(ok)["out"].shape == (1,)
    with pytest.raises(PointSkipped, match=r"input img shape \(1, 6, 3, 32, 64\) is outside the engine's profile"):
        runner.run({**ok, "img": np.zeros((1, 6, 3, 32, 64), np.float32)})
    with pytest.raises(PointSkipped, match="outside"):
        runner.prepare({**ok, "img": np.zeros((1, 4, 3, 32, 32), np.float32)})
