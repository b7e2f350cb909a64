"""3D IoU of yaw-rotated boxes: hand-computed cases, invariances, Monte-Carlo and shapely cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.evaluation.iou3d import (
    bev_intersection_area,
    centre_similarity_pairs,
    iou3d_matrix,
    iou3d_pairs,
)


def box(x=0.0, y=0.0, z=0.0, w=1.0, l=1.0, h=1.0, yaw=0.0) -> np.ndarray:
    return np.array([[x, y, z, w, l, h, yaw]], dtype=np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(iou3d_matrix(a, b)[0, 0])


# ------------------------------------------------------------------------------------------------
# Hand-computed cases
# ------------------------------------------------------------------------------------------------


def test_identical_boxes_have_iou_one():
    a = box(1.5, -2.0, 0.9, 0.5, 0.7, 1.8, 0.4)
    assert iou(a, a) == pytest.approx(1.0, abs=1e-12)


def test_disjoint_boxes_have_iou_zero():
    assert iou(box(), box(x=3.0)) == 0.0
    # Overlapping footprints but stacked: the z ranges do not overlap.
    assert iou(box(), box(z=1.5)) == 0.0
    # Touching faces: zero-volume intersection.
    assert iou(box(), box(x=1.0)) == pytest.approx(0.0, abs=1e-12)


def test_square_box_rotated_90_degrees_is_the_same_box():
    assert iou(box(w=2, l=2), box(w=2, l=2, yaw=math.pi / 2)) == pytest.approx(1.0, abs=1e-12)


def test_non_square_box_rotated_90_degrees():
    # 2 x 1 footprint vs its 90-degree rotation (1 x 2): overlap 1 x 1 = 1, union 2 + 2 - 1 = 3.
    assert iou(box(w=2, l=1), box(w=2, l=1, yaw=math.pi / 2)) == pytest.approx(1 / 3, abs=1e-12)


def test_half_overlap_in_height():
    # Same footprint, shifted by h/2: intersection 0.5, union 1.5.
    assert iou(box(h=1), box(z=0.5, h=1)) == pytest.approx(1 / 3, abs=1e-12)


def test_unit_square_rotated_45_degrees_gives_a_regular_octagon():
    # The overlap is a regular octagon with side s = sqrt(2) - 1, area 2 (1 + sqrt 2) s^2 = 2 (sqrt 2 - 1).
    octagon = 2 * (math.sqrt(2) - 1)
    assert bev_intersection_area(box(), box(yaw=math.pi / 4))[0] == pytest.approx(octagon, abs=1e-12)
    assert iou(box(), box(yaw=math.pi / 4)) == pytest.approx(octagon / (2 - octagon), abs=1e-12)


@pytest.mark.parametrize("d", [0.01, 0.25, 0.3, 0.9])
def test_shift_along_x(d):
    # Unit cubes shifted by d: intersection 1 - d, union 1 + d.
    assert iou(box(), box(x=d)) == pytest.approx((1 - d) / (1 + d), abs=1e-12)


def test_yaw_turns_width_axis():
    # w lies along local x: a 4 x 1 box at yaw 90 degrees spans y, so it contains a 1 x 1 box at y = 1.5.
    long_box = box(w=4, l=1, yaw=math.pi / 2)
    assert iou(long_box, box(y=1.5)) == pytest.approx(1 / 4, abs=1e-12)
    assert iou(long_box, box(x=1.5)) == 0.0


def test_matrix_shapes():
    a = np.repeat(box(), 3, axis=0)
    b = np.repeat(box(x=0.5), 2, axis=0)
    assert iou3d_matrix(a, b).shape == (3, 2)
    assert iou3d_matrix(a[:0], b).shape == (0, 2)
    assert iou3d_matrix(a, b[:0]).shape == (3, 0)


def test_centre_similarity_is_linear_in_distance_up_to_2_m():
    a = np.zeros((3, 7))
    b = np.zeros((3, 7))
    b[:, 0] = [0.0, 1.0, 3.0]
    assert centre_similarity_pairs(a, b) == pytest.approx([1.0, 0.5, 0.0])


# ------------------------------------------------------------------------------------------------
# Random boxes
# ------------------------------------------------------------------------------------------------

_coord = st.floats(-2.0, 2.0, allow_nan=False)
_size = st.floats(0.2, 3.0, allow_nan=False)
_yaw = st.floats(-math.pi, math.pi, allow_nan=False)
_boxes = st.tuples(_coord, _coord, st.floats(-1.0, 1.0), _size, _size, _size, _yaw)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(a=_boxes, b=_boxes)
def test_iou_is_symmetric_bounded_and_invariant_to_rigid_motion(a, b):
    a, b = np.array([a]), np.array([b])
    value = iou(a, b)
    assert 0.0 <= value <= 1.0
    assert iou(b, a) == pytest.approx(value, abs=1e-9)
    # Rotate both boxes about z by the same angle and translate them: the IoU cannot change.
    angle, shift = 0.7, np.array([3.0, -1.0, 0.5])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = []
    for boxes in (a, b):
        m = boxes.copy()
        m[:, :2] = boxes[:, :2] @ rot.T
        m[:, :3] += shift
        m[:, 6] += angle
        moved.append(m)
    assert iou(*moved) == pytest.approx(value, abs=1e-9)


def _points_in_box(b: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) points uniform in box b (7,)."""
    local = rng.uniform(-0.5, 0.5, (n, 3)) * b[3:6]
    c, s = math.cos(b[6]), math.sin(b[6])
    return np.column_stack(
        [b[0] + c * local[:, 0] - s * local[:, 1], b[1] + s * local[:, 0] + c * local[:, 1], b[2] + local[:, 2]]
    )


def _inside(points: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = points - b[:3]
    c, s = math.cos(b[6]), math.sin(b[6])
    u = c * d[:, 0] + s * d[:, 1]
    v = -s * d[:, 0] + c * d[:, 1]
    return (np.abs(u) <= b[3] / 2) & (np.abs(v) <= b[4] / 2) & (np.abs(d[:, 2]) <= b[5] / 2)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    a=_boxes,
    offset=st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-0.5, 0.5)),
    b_shape=st.tuples(_size, _size, _size, _yaw),
    seed=st.integers(0, 2**32 - 1),
)
def test_iou_matches_monte_carlo_estimate(a, offset, b_shape, seed):
    a = np.array(a)
    b = np.array([a[0] + offset[0], a[1] + offset[1], a[2] + offset[2], *b_shape])
    n = 200_000
    rng = np.random.default_rng(seed)
    fraction = _inside(_points_in_box(a, rng, n), b).mean()  # estimates intersection / volume(a)

    vol_a, vol_b = np.prod(a[3:6]), np.prod(b[3:6])
    exact_iou = iou(a[None], b[None])
    exact_fraction = exact_iou * (vol_a + vol_b) / (1 + exact_iou) / vol_a
    # Binomial standard error of the fraction; 5 sigma plus a few points of slack for tiny overlaps.
    sigma = math.sqrt(max(exact_fraction * (1 - exact_fraction), 0.0) / n)
    assert abs(fraction - exact_fraction) <= 5 * sigma + 3 / n


@settings(max_examples=100, deadline=None, derandomize=True)
@given(a=_boxes, b=_boxes)
def test_footprint_overlap_matches_shapely(a, b):
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import Polygon

    assert shapely is not None

    def polygon(bx):
        x, y, _, w, l, _, yaw = bx
        c, s = math.cos(yaw), math.sin(yaw)
        pts = [
            (x + c * u - s * v, y + s * u + c * v)
            for u, v in ((w / 2, l / 2), (-w / 2, l / 2), (-w / 2, -l / 2), (w / 2, -l / 2))
        ]
        return Polygon(pts)

    expected = polygon(a).intersection(polygon(b)).area
    got = bev_intersection_area(np.array([a]), np.array([b]))[0]
    assert got == pytest.approx(expected, abs=1e-9)


def test_batch_equals_one_by_one():
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(-2, 2, (300, 3)), rng.uniform(0.2, 3, (300, 3)), rng.uniform(-4, 4, 300)])
    b = a[rng.permutation(300)]
    batch = iou3d_pairs(a, b)
    single = np.array([iou(a[i : i + 1], b[i : i + 1]) for i in range(300)])
    np.testing.assert_array_equal(batch, single)
