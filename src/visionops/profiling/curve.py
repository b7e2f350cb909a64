"""Latency curves: for each backend, time one inference at each size (cameras or batch).

A *workload* knows one model: it builds the runner of a backend (or raises
:class:`~visionops.profiling.backends.BackendSkipped`) and the inputs of one size for that runner. This module only
sequences it: runner set-up (timed separately: it includes ``torch.compile``), warm-up, timed repeats cycling
through the workload's real inputs, and what went wrong where.

A failure at one size (out of memory, a camera count the engine was not built for) ends that backend's curve there
and is reported with the size. Wrong files or settings (``ValueError``, ``FileNotFoundError``, a damaged ONNX file)
are raised, since every backend would meet them. A failure of ``pytorch_compiled`` before its first point means
compilation does not work for this model here, which is reported as a skip with the error.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from visionops.export.onnx_io import ExportError
from visionops.profiling.backends import BackendSkipped, PointSkipped
from visionops.profiling.timing import LatencyStats, time_calls

__all__ = ["BackendCurve", "PointSkipped", "Workload", "profile_backend", "profile_curves"]


class Workload(Protocol):
    """One model ready to profile (see :mod:`.sparse4d`, :mod:`.detectnet`)."""

    model: str  # "sparse4d" | "detectnet_v2"
    size_name: str  # "cameras" | "batch"

    def runner(self, backend: str) -> Any: ...

    def inputs(self, backend: str, runner: Any, size: int) -> list[Any]:
        """Inputs of ``size`` in the runner's format (timed calls cycle through them)."""
        ...


@dataclass
class BackendCurve:
    """One backend's curve.

    Attributes:
        backend: backend name. status: ``ok`` (at least one point), ``skipped`` (see ``reason``) or ``failed``.
        points: ``{size: LatencyStats}`` in milliseconds.
        errors: ``{size: message}`` of sizes that could not run.
        setup_s: seconds to build the runner plus its very first call (where ``torch.compile`` compiles and
            ONNX Runtime / TensorRT allocate), untimed otherwise.
    """

    backend: str
    status: str = "ok"
    reason: str = ""
    points: dict[int, LatencyStats] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    setup_s: float | None = None

    def medians(self) -> dict[int, float]:
        return {size: stats.median_ms for size, stats in sorted(self.points.items())}

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "status": self.status, "reason": self.reason, "setup_s": self.setup_s,
                "points": [{"size": size, **stats.to_dict()} for size, stats in sorted(self.points.items())],
                "errors": {str(k): v for k, v in sorted(self.errors.items())}}


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


def _cycling(runner: Any, prepared: list[Any]) -> Callable[[], Any]:
    """One inference per call, on the next prepared input (real frames/images in turn, not one cached input)."""
    cycle = itertools.cycle(prepared)
    return lambda: runner(next(cycle))


def profile_backend(workload: Workload, backend: str, sizes: Sequence[int], *, warmup: int, repeats: int,
                    echo: Callable[[str], Any] = print) -> BackendCurve:
    """Time ``backend`` at every size (ascending); never raises for the backend's own failures."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got {warmup}, {repeats}")
    curve = BackendCurve(backend)
    started = time.perf_counter()
    try:
        runner = workload.runner(backend)
    except BackendSkipped as exc:
        curve.status, curve.reason = "skipped", str(exc)
        echo(f"  {backend}: skipped ({curve.reason})")
        return curve
    for size in sorted(sizes):
        try:
            prepared = [runner.prepare(item) for item in workload.inputs(backend, runner, size)]
            if curve.setup_s is None:
                runner(prepared[0])
                runner.synchronize()
                curve.setup_s = time.perf_counter() - started
            stats = time_calls(_cycling(runner, prepared), warmup=warmup, repeats=repeats,
                               synchronize=runner.synchronize)
        except (PointSkipped, BackendSkipped) as exc:
            curve.errors[size] = str(exc)
            echo(f"  {backend} @ {workload.size_name}={size}: skipped ({exc})")
            continue
        except Exception as exc:  # a runtime failure is a result to report, not a crash of the profile
            if not curve.points and backend == "pytorch_compiled":
                curve.status, curve.reason = "skipped", f"torch.compile failed for this model: {_message(exc)}"
                echo(f"  {backend}: skipped ({curve.reason})")
                return curve
            if isinstance(exc, ValueError | FileNotFoundError | ExportError):
                raise  # wrong files or settings: the message names them, and every backend would hit them
            curve.errors[size] = _message(exc)
            echo(f"  {backend} @ {workload.size_name}={size}: failed ({curve.errors[size]}); larger sizes skipped")
            break
        curve.points[size] = stats
        echo(f"  {backend} @ {workload.size_name}={size}: median {stats.median_ms:.2f} ms "
             f"(p10 {stats.p10_ms:.2f}, p90 {stats.p90_ms:.2f}, n={stats.repeats})")
    if not curve.points:
        curve.status = "failed"
        curve.reason = "; ".join(f"{workload.size_name}={k}: {v}" for k, v in curve.errors.items()) or "no sizes"
    return curve


def profile_curves(workload: Workload, backends: Sequence[str], sizes: Sequence[int], *, warmup: int, repeats: int,
                   echo: Callable[[str], Any] = print) -> list[BackendCurve]:
    """:func:`profile_backend` for each backend, in order."""
    return [profile_backend(workload, backend, sizes, warmup=warmup, repeats=repeats, echo=echo)
            for backend in backends]
