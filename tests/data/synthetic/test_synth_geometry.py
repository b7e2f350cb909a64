"""Geometry primitives of the synthetic renderer: ray casting, 2D boxes, cameras."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.data.schema import box_corners
from visionops.data.synthetic import raycast
from visionops.data.synthetic.annotate import amodal_box, clip_box_to_near, pixel_rect, visible_box
from visionops.data.synthetic.cameras import (
    camera_ids,
    footprint_polygon,
    footprints_overlap,
    intrinsics,
    look_at,
    pixel_rays,
    place_cameras,
)
from visionops.data.synthetic.layout import generate_layout

QUICK = settings(max_examples=60, deadline=None, derandomize=True)
coord = st.floats(-5, 5, allow_nan=False)


@QUICK
@given(lo=st.tuples(coord, coord, coord), size=st.tuples(*[st.floats(0.05, 3)] * 3),
       seed=st.integers(0, 2**31))
def test_slab_hits_are_on_the_box_surface(lo, size, seed):
    """Each reported hit lies on the box surface, just outside before it and inside after it; rays
    reported as misses never pass through the box (checked by dense sampling along them)."""
    lo = np.array(lo)
    hi = lo + np.array(size)
    rng = np.random.default_rng(seed)
    origin = lo - rng.uniform(1.0, 4.0, 3) * rng.choice([-1, 1], 3) - (hi - lo) * (rng.random(3) < 0.5)
    if np.all((origin > lo) & (origin < hi)):
        origin = hi + 1.0
    centre = (lo + hi) / 2
    dirs = (centre + rng.normal(0, 1.5, (200, 3)) - origin)
    hits = raycast.cast_boxes(origin, dirs, lo[None], hi[None], near=1e-6)
    inside = lambda p: np.all((p >= lo - 1e-7) & (p <= hi + 1e-7), axis=-1)  # noqa: E731
    for d, t, idx in zip(dirs, hits.t, hits.index, strict=True):
        if idx >= 0:
            eps = 1e-6 * max(1.0, t)
            assert inside(origin + (t + eps) * d)
            assert not inside(origin + (t - 10 * eps) * d) or t < 1e-4
        else:
            s = np.linspace(0, 20, 4000)[:, None]
            strict_inside = np.all((origin + s * d > lo + 1e-3) & (origin + s * d < hi - 1e-3), axis=1)
            assert not np.any(strict_inside)


def test_cast_boxes_picks_the_nearest_and_the_entry_face():
    origin = np.array([0.0, 0.0, 0.0])
    dirs = np.array([[1.0, 0.0, 0.0], [1.0, 0.15, 0.0], [0.0, 1.0, 0.0]])
    lo = np.array([[5.0, -1.0, -1.0], [2.0, -0.1, -1.0]])
    hi = np.array([[6.0, 1.0, 1.0], [3.0, 0.1, 1.0]])
    hits = raycast.cast_boxes(origin, dirs, lo, hi)
    assert hits.index.tolist() == [1, 0, -1]
    assert hits.t[0] == pytest.approx(2.0) and hits.t[1] == pytest.approx(5.0) and np.isinf(hits.t[2])
    assert hits.axis[:2].tolist() == [0, 0]
    normals = raycast.face_normals(dirs[:2].astype(np.float32), hits.axis[:2].astype(np.int64))
    assert normals.tolist() == [[-1, 0, 0], [-1, 0, 0]]


def test_cast_room_exits_on_the_right_surface():
    origin = np.array([0.0, 0.0, 3.0])
    dirs = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.1], [0.1, 0.0, 1.0]])
    t, surface = raycast.cast_room(origin, dirs, np.array([-4.0, -2.0]), np.array([6.0, 5.0]), 7.0)
    assert surface.tolist() == [raycast.SURFACE_FLOOR, raycast.SURFACE_WALL_X1, raycast.SURFACE_WALL_Y0,
                                raycast.SURFACE_CEILING]
    assert t.tolist() == pytest.approx([3.0, 6.0, 2.0, 4.0])


def test_to_box_frame_preserves_depth_and_rotates():
    origin = np.array([1.0, 2.0, 3.0])
    dirs = np.array([[1.0, 0.0, -0.5]], dtype=np.float32)
    o, d = raycast.to_box_frame(origin, dirs, np.array([1.0, 0.0, 0.0]), math.pi / 2)
    assert o == pytest.approx([2.0, 0.0, 3.0])
    assert d[0] == pytest.approx([0.0, -1.0, -0.5])


# -- 2D boxes ----------------------------------------------------------------------------------------


def _camera(width=320, height=180):
    K = intrinsics(width, height, 70.0)
    R, t = look_at(np.array([0.0, 0.0, 2.0]), np.array([10.0, 0.0, 0.0]))
    return K, R, t


def test_amodal_box_equals_projected_corners_in_front():
    K, R, t = _camera()
    corners = box_corners(np.array([8.0, 0.5, 0.9]), np.array([0.5, 0.6, 1.8]), np.array([0, 0, 0.4]))
    box = amodal_box(corners, R, t, K, 320, 180)
    uvw = (corners @ R.T + t) @ K.T
    uv = uvw[:, :2] / uvw[:, 2:]
    assert box == pytest.approx([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


@QUICK
@given(x=st.floats(-1.0, 1.5), y=st.floats(-1, 1), yaw=st.floats(-3.1, 3.1), seed=st.integers(0, 1000))
def test_amodal_box_of_a_box_behind_the_camera_contains_its_visible_points(x, y, yaw, seed):
    """A box straddling the camera plane: the near-clipped box must contain the projection of every
    point of the box in front of the near plane (sampled), and be the tight bound of those points."""
    K, R, t = _camera(4000, 3000)  # a huge image so clipping to the image does not interfere
    scale = np.array([2.5, 1.2, 2.2])
    loc = np.array([x, y, 1.1])
    corners = box_corners(loc, scale, np.array([0, 0, yaw]))
    box = amodal_box(corners, R, t, K, 4000, 3000)
    rng = np.random.default_rng(seed)
    local = rng.uniform(-0.5, 0.5, (20000, 3)) * scale
    c, s = math.cos(yaw), math.sin(yaw)
    pts = local @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + loc
    cam = pts @ R.T + t
    front = cam[:, 2] >= raycast.NEAR
    if not front.any():
        return
    uv = (cam[front] @ K.T)[:, :2] / cam[front][:, 2:3]
    inside_image = (uv[:, 0] >= 0) & (uv[:, 0] <= 3999) & (uv[:, 1] >= 0) & (uv[:, 1] <= 2999)
    uv = uv[inside_image]
    if len(uv) == 0:
        return
    assert box is not None
    assert np.all(uv[:, 0] >= box[0] - 1e-6) and np.all(uv[:, 0] <= box[2] + 1e-6)
    assert np.all(uv[:, 1] >= box[1] - 1e-6) and np.all(uv[:, 1] <= box[3] + 1e-6)


def test_clip_box_to_near_all_behind_is_empty():
    corners = box_corners(np.array([0, 0, -3.0]), np.array([1, 1, 1.0]), np.zeros(3))
    assert len(clip_box_to_near(corners)) == 0


def test_pixel_rect_and_visible_box():
    assert pixel_rect(np.array([1.2, 2.0, 4.9, 2.5])) == (2, 2, 5, 3)
    assert pixel_rect(np.array([1.2, 2.1, 1.9, 2.5])) is None
    mask = np.zeros((5, 6), dtype=bool)
    mask[1:3, 2:5] = True
    count, box = visible_box(mask, 10, 20)
    assert count == 6 and box.tolist() == [12, 21, 14, 22]
    assert visible_box(np.zeros((2, 2), bool), 0, 0) == (0, None)


# -- cameras -----------------------------------------------------------------------------------------


def test_camera_id_styles():
    assert camera_ids(3) == ["Camera_0000", "Camera_0001", "Camera_0002"]
    assert camera_ids(3, "two_digit") == ["Camera", "Camera_01", "Camera_02"]
    with pytest.raises(ValueError):
        camera_ids(2, "three")


def test_pixel_rays_reproject_to_their_pixels():
    from visionops.data.synthetic.cameras import CameraSpec

    K = intrinsics(64, 48, 80.0)
    R, t = look_at(np.array([1.0, 2.0, 4.0]), np.array([6.0, -1.0, 0.0]), roll_rad=0.05)
    cam = CameraSpec("c", K, R, t, 64, 48)
    rays = pixel_rays(cam, dtype=np.float64)
    pts = cam.position + 3.0 * rays  # z-depth 3 along every ray
    uv, z = cam.project(pts.reshape(-1, 3))
    assert z == pytest.approx(np.full(64 * 48, 3.0))
    vv, uu = np.mgrid[0:48, 0:64]
    assert uv[:, 0] == pytest.approx(uu.ravel(), abs=1e-9) and uv[:, 1] == pytest.approx(vv.ravel(), abs=1e-9)


@pytest.mark.parametrize("seed,count", [(0, 4), (1, 4), (2, 5), (3, 6), (4, 8)])
def test_cameras_are_high_look_down_and_overlap(seed, count):
    rng = np.random.default_rng(seed)
    layout = generate_layout(rng, (20.0, 15.0))
    cams = place_cameras(rng, layout, camera_ids(count), 960, 540)
    polys = [footprint_polygon(c, layout) for c in cams]
    assert all(footprints_overlap(polys))
    for cam, poly in zip(cams, polys, strict=True):
        assert 3.0 <= cam.position[2] <= 6.0
        assert layout.inside_floor(cam.position[:2])[0]
        assert cam.R[2, 2] < -0.2  # optical axis points down
        assert poly.area > 20.0  # sees a good part of the floor
