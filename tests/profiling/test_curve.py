"""The curve loop on a scripted workload: points, per-size skips, failures, compile failures."""

from __future__ import annotations

import pytest

from visionops.profiling.backends import BackendSkipped
from visionops.profiling.curve import PointSkipped, profile_curves


class ScriptedRunner:
    def __init__(self, fail_at=None, skip_at=None):
        self.fail_at, self.skip_at, self.calls = fail_at, skip_at, []

    def prepare(self, item):
        return item

    def __call__(self, prepared):
        if prepared == self.fail_at:
            raise MemoryError("out of memory")
        self.calls.append(prepared)

    def synchronize(self):
        return None


class ScriptedWorkload:
    model, size_name = "sparse4d", "cameras"

    def __init__(self):
        self.runners = {"pytorch": ScriptedRunner(), "onnxruntime_cpu": ScriptedRunner(fail_at=4),
                        "tensorrt": ScriptedRunner(skip_at=2), "pytorch_compiled": ScriptedRunner(fail_at=1)}

    def runner(self, backend):
        if backend == "onnxruntime_cuda":
            raise BackendSkipped("no CUDAExecutionProvider")
        return self.runners[backend]

    def inputs(self, backend, runner, size):
        if size == runner.skip_at:
            raise PointSkipped(f"engine built for other camera counts than {size}")
        return [size, size]  # two distinct inputs, cycled


def test_profile_curves_outcomes():
    messages = []
    workload = ScriptedWorkload()
    curves = profile_curves(workload, ["pytorch", "pytorch_compiled", "onnxruntime_cpu", "onnxruntime_cuda",
                                       "tensorrt"], [8, 1, 2, 4], warmup=1, repeats=3, echo=messages.append)
    by = {c.backend: c for c in curves}
    assert sorted(by["pytorch"].points) == [1, 2, 4, 8] and by["pytorch"].status == "ok"
    assert by["pytorch"].setup_s is not None
    # one first call + warm-up + repeats per size, inputs cycled
    assert workload.runners["pytorch"].calls[:5] == [1, 1, 1, 1, 1]
    assert len(workload.runners["pytorch"].calls) == 1 + 4 * (1 + 3)
    assert by["pytorch_compiled"].status == "skipped" and "torch.compile failed" in by["pytorch_compiled"].reason
    ort = by["onnxruntime_cpu"]
    assert sorted(ort.points) == [1, 2] and "MemoryError: out of memory" in ort.errors[4] and 8 not in ort.errors
    assert by["onnxruntime_cuda"].status == "skipped" and by["onnxruntime_cuda"].reason == "no CUDAExecutionProvider"
    trt = by["tensorrt"]
    assert sorted(trt.points) == [1, 4, 8] and "other camera counts" in trt.errors[2]
    assert any("larger sizes skipped" in m for m in messages)
    data = ort.to_dict()
    assert [p["size"] for p in data["points"]] == [1, 2] and data["errors"] == {"4": "MemoryError: out of memory"}


def test_every_size_failing_is_a_failed_backend():
    class Broken(ScriptedWorkload):
        def inputs(self, backend, runner, size):
            raise PointSkipped("fixed at 3 cameras")

    curve = profile_curves(Broken(), ["pytorch"], [1, 2], warmup=0, repeats=1, echo=lambda m: None)[0]
    assert curve.status == "failed" and "cameras=1: fixed at 3 cameras" in curve.reason
    with pytest.raises(ValueError):
        profile_curves(Broken(), ["pytorch"], [1], warmup=-1, repeats=1, echo=lambda m: None)
