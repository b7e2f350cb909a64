"""Capacity tables from a latency curve.

* Sparse4D (the TAO card's table): one forward processes one frame of every camera of a BEV group, so a device
  sustains N cameras at F FPS when the N-camera latency is at most 1000 / F ms. The largest such N is read off
  the measured latency-vs-cameras curve; between two measured camera counts the curve is interpolated linearly
  (latency grows about linearly with cameras: the backbone dominates), beyond the largest measured count it is
  only a lower bound.
* DetectNet_v2 (the DashCamNet card): the largest *measured* batch whose batch latency stays under the budget
  (33 ms = 30 FPS), and its throughput in images per second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Bound = Literal["measured", "interpolated", "at_least", "at_most"]


@dataclass(frozen=True)
class SizeWithin:
    """The largest size (cameras or batch) whose latency meets a budget.

    Attributes:
        budget_ms: the latency budget, milliseconds.
        size: the largest size meeting it (0 when even the smallest measured size misses it).
        bound: ``measured`` (a timed point, the next timed point misses the budget or is size + 1),
            ``interpolated`` (between two timed points), ``at_least`` (the largest timed size still meets it:
            time larger sizes for the true value), ``at_most`` (the smallest timed size, > 1, misses it: the
            answer is below it, time smaller sizes).
        latency_ms: latency at ``size`` (measured or interpolated); None when size is 0.
    """

    budget_ms: float
    size: int
    bound: Bound
    latency_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """Table text: ``12``, ``~12`` (interpolated), ``>=16`` (lower bound), ``<=3`` (upper bound)."""
        prefix = {"measured": "", "interpolated": "~", "at_least": ">=", "at_most": "<="}[self.bound]
        return f"{prefix}{self.size}"


def _points(curve: Mapping[int, float]) -> list[tuple[int, float]]:
    points = sorted((int(n), float(ms)) for n, ms in curve.items())
    if not points:
        raise ValueError("empty latency curve: nothing was measured")
    if any(n < 1 or not math.isfinite(ms) or ms < 0 for n, ms in points):
        raise ValueError(f"latency curve needs sizes >= 1 and finite latencies >= 0, got {points}")
    return points


def largest_within(curve: Mapping[int, float], budget_ms: float, *, interpolate: bool) -> SizeWithin:
    """Largest size whose latency is <= ``budget_ms`` on the curve ``{size: latency_ms}``.

    The curve is walked upwards and stops at the first size over the budget, so a noisy point further up that
    happens to dip under the budget does not count.
    """
    if budget_ms <= 0:
        raise ValueError(f"budget must be > 0 ms, got {budget_ms}")
    points = _points(curve)
    first_n, first_ms = points[0]
    if first_ms > budget_ms:
        if first_n == 1:
            return SizeWithin(budget_ms, 0, "measured", None)
        return SizeWithin(budget_ms, first_n - 1, "at_most", None)
    last_ok = points[0]
    for n, ms in points[1:]:
        if ms > budget_ms:
            ok_n, ok_ms = last_ok
            if not interpolate or n == ok_n + 1:
                return SizeWithin(budget_ms, ok_n, "measured", ok_ms)
            slope = (ms - ok_ms) / (n - ok_n)
            size = min(n - 1, ok_n + int(math.floor((budget_ms - ok_ms) / slope)))
            if size == ok_n:
                return SizeWithin(budget_ms, ok_n, "measured", ok_ms)
            return SizeWithin(budget_ms, size, "interpolated", ok_ms + slope * (size - ok_n))
        last_ok = (n, ms)
    return SizeWithin(budget_ms, last_ok[0], "at_least", last_ok[1])


def cameras_at_fps(curve: Mapping[int, float], fps_targets: Sequence[float]) -> dict[str, SizeWithin]:
    """Sparse4D: ``{"30": SizeWithin, ...}`` cameras one device sustains at each frame rate (batch 1)."""
    return {f"{fps:g}": largest_within(curve, 1000.0 / fps, interpolate=True) for fps in fps_targets}


def max_batch_under(curve: Mapping[int, float], budget_ms: float = 33.0) -> dict[str, Any]:
    """DetectNet_v2: the largest measured batch under ``budget_ms`` and the throughputs.

    Returns:
        ``{"budget_ms", "batch", "bound", "batch_latency_ms", "images_per_s"}`` (throughput at that batch, None
        when no batch fits) plus ``"batch1_latency_ms"`` / ``"batch1_images_per_s"`` when batch 1 was timed.
    """
    within = largest_within(curve, budget_ms, interpolate=False)
    out: dict[str, Any] = {"budget_ms": budget_ms, "batch": within.size, "bound": within.bound,
                           "batch_latency_ms": within.latency_ms,
                           "images_per_s": (1000.0 * within.size / within.latency_ms
                                            if within.size and within.latency_ms else None)}
    if 1 in curve:
        out["batch1_latency_ms"] = float(curve[1])
        out["batch1_images_per_s"] = 1000.0 / float(curve[1]) if curve[1] > 0 else None
    return out
