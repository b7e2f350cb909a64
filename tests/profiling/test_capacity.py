"""Capacity tables on synthetic latency curves (no timing involved)."""

from __future__ import annotations

import pytest

from visionops.profiling.capacity import cameras_at_fps, largest_within, max_batch_under


def linear(sizes, base=5.0, per=3.0):
    return {n: base + per * n for n in sizes}


def test_cameras_every_count_measured():
    curve = linear(range(1, 13))  # 8 ms @1 ... 41 ms @12
    table = cameras_at_fps(curve, [30, 15, 10])
    # 30 FPS = 33.3 ms: 5 + 3n <= 33.3 -> n = 9, a measured point (10 misses)
    assert table["30"].size == 9 and table["30"].bound == "measured" and table["30"].latency_ms == 32.0
    # 15 / 10 FPS: every measured count fits -> only a lower bound
    assert (table["15"].size, table["15"].bound) == (12, "at_least")
    assert table["15"].label() == ">=12" and table["30"].label() == "9"


def test_cameras_interpolated_between_sparse_points():
    curve = linear([1, 2, 4, 8, 16])  # 8, 11, 17, 29, 53 ms
    table = cameras_at_fps(curve, [30.0, 15.0, 10.0])
    assert (table["30"].size, table["30"].bound) == (9, "interpolated")
    assert table["30"].latency_ms == pytest.approx(32.0)
    assert table["30"].label() == "~9"
    assert (table["15"].size, table["15"].bound) == (16, "at_least")
    # a budget just under the 16-camera point: interpolation stops at 15, never claims the timed 16
    assert largest_within(curve, 52.9, interpolate=True).size == 15


def test_first_point_over_budget():
    assert largest_within({1: 50.0, 2: 90.0}, 33.3, interpolate=True).size == 0
    over = largest_within({4: 50.0, 8: 90.0}, 33.3, interpolate=True)
    assert (over.size, over.bound, over.label()) == (3, "at_most", "<=3")


def test_stops_at_first_crossing_despite_a_noisy_dip():
    curve = {1: 10.0, 2: 40.0, 3: 30.0, 4: 60.0}
    assert largest_within(curve, 33.3, interpolate=False).size == 1


def test_detectnet_largest_measured_batch():
    curve = {1: 5.0, 2: 8.0, 4: 14.0, 8: 26.0, 16: 50.0}
    result = max_batch_under(curve, 33.0)
    assert result["batch"] == 8 and result["bound"] == "measured"  # no interpolation: the card times batches
    assert result["images_per_s"] == pytest.approx(8 / 26.0 * 1000)
    assert result["batch1_latency_ms"] == 5.0 and result["batch1_images_per_s"] == pytest.approx(200.0)
    none_fit = max_batch_under({1: 40.0}, 33.0)
    assert none_fit["batch"] == 0 and none_fit["images_per_s"] is None


@pytest.mark.parametrize("curve", [{}, {0: 1.0}, {1: float("nan")}, {1: -1.0}])
def test_bad_curves(curve):
    with pytest.raises(ValueError, match="curve"):
        largest_within(curve, 33.0, interpolate=True)


def test_bad_budget():
    with pytest.raises(ValueError, match="budget"):
        largest_within({1: 1.0}, 0.0, interpolate=True)
