"""Latency measurement: warm-up calls, then timed calls bracketed by a device synchronisation.

GPU work is asynchronous: without a synchronisation before reading the clock, a timer measures the launch, not
the work. Every timed call is therefore ``sync(); t0; fn(); sync(); t1``. The summary uses order statistics
(median, p10, p90, IQR), which one slow outlier (a page fault, another process) does not drag, unlike the mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of repeated timings, all in milliseconds.

    Attributes:
        repeats: number of timed calls.
        median_ms, mean_ms, min_ms, max_ms: the usual statistics.
        p10_ms, p90_ms: 10th / 90th percentiles (linear interpolation).
        iqr_ms: p75 - p25.
        samples_ms: every timing, in call order.
    """

    repeats: int
    median_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    min_ms: float
    max_ms: float
    samples_ms: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples_ms"] = [round(v, 4) for v in self.samples_ms]
        return out


def summarize(samples_ms: Sequence[float]) -> LatencyStats:
    """:class:`LatencyStats` of timings in milliseconds.

    Raises:
        ValueError: no samples, or a negative / non-finite sample.
    """
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no timings to summarise (repeats must be >= 1)")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"timings must be finite and >= 0 ms, got {values.tolist()}")
    p10, p25, p50, p75, p90 = np.percentile(values, [10, 25, 50, 75, 90])
    return LatencyStats(repeats=int(values.size), median_ms=float(p50), mean_ms=float(values.mean()),
                        p10_ms=float(p10), p90_ms=float(p90), iqr_ms=float(p75 - p25), min_ms=float(values.min()),
                        max_ms=float(values.max()), samples_ms=tuple(float(v) for v in values))


def _no_sync() -> None:
    return None


def time_calls(fn: Callable[[], Any], *, warmup: int, repeats: int,
               synchronize: Callable[[], None] | None = None,
               clock: Callable[[], int] = time.perf_counter_ns) -> LatencyStats:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; return the statistics.

    Args:
        fn: one inference step (inputs already prepared on the device; what it returns is discarded).
        warmup: untimed calls first (allocators, autotuning, lazy initialisation, caches, instance bank).
        repeats: timed calls (>= 1).
        synchronize: waits for the device to finish queued work (``torch.cuda.synchronize``); None on CPU.
        clock: nanosecond clock (a parameter so tests can drive it).
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got {warmup}, {repeats}")
    sync = synchronize or _no_sync
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        sync()
        start = clock()
        fn()
        sync()
        samples.append((clock() - start) / 1e6)
    return summarize(samples)
