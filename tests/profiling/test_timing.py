"""Timing statistics and the timing protocol (warm-up, synchronisation), driven by a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from visionops.profiling.timing import summarize, time_calls


def test_summarize_order_statistics():
    samples = [10.0, 12.0, 11.0, 13.0, 100.0, 9.0, 10.5, 11.5, 12.5, 10.0]
    stats = summarize(samples)
    assert stats.repeats == 10
    assert stats.median_ms == pytest.approx(np.median(samples))
    assert stats.p10_ms == pytest.approx(np.percentile(samples, 10))
    assert stats.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert stats.iqr_ms == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))
    assert (stats.min_ms, stats.max_ms) == (9.0, 100.0)
    assert stats.mean_ms == pytest.approx(np.mean(samples))
    # one outlier moves the mean a lot and the median not at all
    assert stats.mean_ms > 19 and stats.median_ms == pytest.approx(11.25)
    assert stats.to_dict()["samples_ms"] == samples


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -2.0], [float("inf")]])
def test_summarize_rejects_bad_samples(bad):
    with pytest.raises(ValueError, match="timings|no timings"):
        summarize(bad)


def test_time_calls_warmup_sync_and_clock():
    events: list[str] = []
    now = [0]
    durations = iter([5_000_000, 7_000_000, 6_000_000, 1_000_000_000, 2_000_000, 4_000_000])  # ns per call

    def fn():
        events.append("call")
        now[0] += next(durations)

    def sync():
        events.append("sync")

    stats = time_calls(fn, warmup=2, repeats=4, synchronize=sync, clock=lambda: now[0])
    # the two warm-up calls (5 and 7 ms) are not in the statistics
    assert stats.samples_ms == (6.0, 1000.0, 2.0, 4.0)
    assert stats.median_ms == pytest.approx(5.0)
    # every timed call is bracketed by synchronisations (device work finished before reading the clock)
    assert events[:3] == ["call", "call", "sync"]
    assert events[3:] == ["sync", "call", "sync"] * 4


@pytest.mark.parametrize(("warmup", "repeats"), [(-1, 3), (0, 0)])
def test_time_calls_rejects_bad_counts(warmup, repeats):
    with pytest.raises(ValueError, match="warmup must be"):
        time_calls(lambda: None, warmup=warmup, repeats=repeats)
