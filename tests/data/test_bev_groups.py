"""BEV groups: floor footprints from calibration, TAO's origin/dimensions, and the three grouping modes."""

import json
import math

import numpy as np
import pytest
import shapely
from factories import make_camera
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from visionops.data.bev_groups import (
    FOV_ATTRIBUTE,
    BevGroup,
    coverage_partition,
    floor_footprint,
    group_geometry,
    groups_from_json,
    groups_to_json,
    make_groups,
)
from visionops.data.calibration import Calibration

W, H = 640, 480


def _visible(cam, points: np.ndarray, max_range_m: float, tol_px: float = 0.0) -> np.ndarray:
    """(N,) bool: in front of the camera, inside the image (+ tol_px) and within range horizontally."""
    uv, depth = cam.project(points)
    inside = (
        (uv[:, 0] >= -0.5 - tol_px) & (uv[:, 0] <= W - 0.5 + tol_px)
        & (uv[:, 1] >= -0.5 - tol_px) & (uv[:, 1] <= H - 0.5 + tol_px)
    )
    horizontal = np.linalg.norm(points[:, :2] - cam.position[:2], axis=1)
    return (depth > 0) & inside & (horizontal <= max_range_m + 1e-6)


def _pixel_ray(cam, u: float, v: float) -> np.ndarray:
    return cam.extrinsic[:, :3].T @ np.linalg.inv(cam.intrinsic) @ np.array([u, v, 1.0])


def _ring(prefix: str, centre, n: int, radius: float = 6.0, z: float = 4.0, phase: float = 0.0) -> list:
    """n cameras on a circle around ``centre`` (x, y), all looking at it."""
    cams = []
    for i in range(n):
        a = phase + 2 * math.pi * i / n
        pos = [centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a), z]
        cams.append(make_camera(f"{prefix}{i:02d}", pos, [centre[0], centre[1], 0.0], W, H))
    return cams


# -- floor_footprint ------------------------------------------------------------------------------------
STEEP = ([1.0, 2.0, 6.0], [3.0, 2.5, 0.0])
TILTED = ([-5.0, 3.0, 4.0], [2.0, 0.0, 0.0])
HORIZONTAL = ([1.0, 1.0, 4.5], [21.0, 3.0, 4.0])  # camera above the slab, horizon in view
IN_SLAB = ([1.0, 1.0, 2.0], [11.0, 1.0, 2.0])  # camera mounted between the 1 m and 3 m planes
CAMERAS = {"steep": STEEP, "tilted": TILTED, "horizontal": HORIZONTAL, "in_slab": IN_SLAB}


def test_steep_camera_footprint_contains_principal_ray_and_visible_pixels_not_points_behind():
    cam = make_camera("Camera_0000", *STEEP, W, H)
    fp = floor_footprint(cam)
    c = cam.position
    forward = cam.extrinsic[2, :3]
    for h in (1.0, 2.0, 3.0):
        p = c + (h - c[2]) / forward[2] * forward
        assert fp.contains(Point(p[:2])), h
    for u in np.linspace(0.05 * W, 0.95 * W, 7):
        for v in np.linspace(0.05 * H, 0.95 * H, 5):
            d = _pixel_ray(cam, u, v)
            for h in (1.0, 2.0, 3.0):
                p = c + (h - c[2]) / d[2] * d
                assert fp.contains(Point(p[:2])), (u, v, h)
    behind = c[:2] - 2.0 * forward[:2] / np.linalg.norm(forward[:2])
    assert not fp.contains(Point(behind))
    # Seen from 6 m up, the 1-3 m slab is a few metres across, nowhere near the 40 m range.
    assert 5 < fp.area < 200


@pytest.mark.parametrize("name", sorted(CAMERAS))
def test_footprint_is_the_projection_of_the_visible_slab(name):
    """Against brute force: every visible point at 1-3 m within range lies in the footprint, every vertex of the
    footprint is (up to float noise) visible at some height, and the footprint is not much bigger than the hull
    of the sampled visible points."""
    cam = make_camera("cam", *CAMERAS[name], W, H)
    max_range = 25.0
    fp = floor_footprint(cam, max_range_m=max_range, samples=32)
    assert fp.is_valid and fp.area > 0

    rng = np.random.default_rng(0)
    xmin, ymin, xmax, ymax = fp.bounds
    pts = np.column_stack([
        rng.uniform(xmin - 3, xmax + 3, 40000), rng.uniform(ymin - 3, ymax + 3, 40000), rng.uniform(1, 3, 40000)
    ])
    seen = pts[_visible(cam, pts, max_range)]
    assert len(seen) > 500
    # 0.05 m: the range circle is a 128-gon inscribed in the true circle.
    grown = fp.buffer(0.05)
    assert all(grown.contains(Point(p)) for p in seen[:, :2])
    assert shapely.MultiPoint(seen[:, :2]).convex_hull.area > 0.9 * fp.area

    c = cam.position
    for x, y in list(fp.exterior.coords)[:-1]:
        if math.hypot(x - c[0], y - c[1]) < 1e-9:
            continue  # the camera centre itself, for a camera inside the slab
        hs = np.linspace(1.0, 3.0, 201)
        candidates = np.column_stack([np.full_like(hs, x), np.full_like(hs, y), hs])
        assert _visible(cam, candidates, max_range, tol_px=0.5).any(), (x, y)


def test_near_horizontal_camera_footprint_reaches_the_range_cut():
    cam = make_camera("cam", *HORIZONTAL, W, H)
    c = cam.position[:2]
    for max_range in (20.0, 40.0):
        fp = floor_footprint(cam, max_range_m=max_range)
        dist = [math.hypot(x - c[0], y - c[1]) for x, y in fp.exterior.coords]
        assert max(dist) == pytest.approx(max_range, abs=1e-6)
        assert fp.contains(Point(c[0] + 0.9 * max_range, c[1] + 0.09 * max_range))  # along the view direction
    # A point 10 m behind the camera is not in view.
    assert not floor_footprint(cam).contains(Point(c[0] - 10.0, c[1]))


def test_camera_inside_the_slab_sees_the_floor_next_to_it():
    cam = make_camera("cam", *IN_SLAB, W, H)
    fp = floor_footprint(cam)
    assert fp.contains(Point(1.5, 1.0))  # 0.5 m ahead at the camera's own height, on the principal ray
    assert not fp.contains(Point(0.5, 1.0))


def test_camera_looking_at_the_ceiling_has_an_empty_footprint():
    cam = make_camera("cam", [0.0, 1.0, 4.0], [10.0, 1.0, 14.0], W, H)  # 45 deg up, vertical half-FOV ~25 deg
    assert floor_footprint(cam).is_empty


def test_wkt_attribute_wins_and_survives_a_calibration_json_round_trip():
    cam = make_camera("Camera_0003", *STEEP, W, H)
    cam.attributes[FOV_ATTRIBUTE] = "POLYGON ((10 10, 14 10, 14 14, 10 14, 10 10))"
    # On disk attribute values are strings; parse back to check the WKT string is kept as is.
    cam = Calibration.from_json(json.loads(json.dumps(Calibration(sensors=[cam]).to_json()))).sensors[0]
    fp = floor_footprint(cam)
    assert fp.equals(box(10, 10, 14, 14))

    cam.attributes[FOV_ATTRIBUTE] = "POLYGON Z ((0 0 0, 2 0 0, 2 2 0, 0 2 0, 0 0 0))"
    fp = floor_footprint(cam)
    assert not fp.has_z and fp.equals(box(0, 0, 2, 2))
    # A self-intersecting bow tie is repaired rather than rejected.
    cam.attributes[FOV_ATTRIBUTE] = "POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))"
    assert floor_footprint(cam).area == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("wkt", "reason"),
    [("POLYGON ((0 0, 1 0, 1", "unparsable"), ("POLYGON EMPTY", "empty"), ("POINT (1 2)", "POLYGON"),
     ("", "unparsable"), (12, "WKT")],
)
def test_bad_wkt_attribute_names_camera_and_attribute(wkt, reason):
    cam = make_camera("Camera_0007", *STEEP, W, H)
    cam.attributes[FOV_ATTRIBUTE] = wkt
    with pytest.raises(ValueError, match=reason) as info:
        floor_footprint(cam)
    assert "Camera_0007" in str(info.value) and FOV_ATTRIBUTE in str(info.value)


def test_missing_image_size_names_the_camera():
    cam = make_camera("Camera_0002", *STEEP, W, H)
    del cam.attributes["frameWidth"]
    with pytest.raises(ValueError, match="Camera_0002.*frameWidth"):
        floor_footprint(cam)


# -- group geometry -------------------------------------------------------------------------------------
def test_group_geometry_matches_a_hand_computation():
    footprints = {"a": box(0, 0, 4, 4), "b": box(2, 0, 6, 4), "far": box(50, 50, 51, 51)}
    origin, dims = group_geometry(footprints, ["b", "a"], dilation_m=1.0)
    union = shapely.union_all([box(0, 0, 4, 4).buffer(1.0), box(2, 0, 6, 4).buffer(1.0)])
    assert dims == pytest.approx((-1.0, -1.0, 7.0, 5.0))
    assert origin == pytest.approx((union.centroid.x, union.centroid.y, 0.0))
    assert origin == pytest.approx((3.0, 2.0, 0.0))  # the union is symmetric about x = 3, y = 2
    origin, dims = group_geometry(footprints, ["a"], dilation_m=0.0)
    assert origin == pytest.approx((2.0, 2.0, 0.0)) and dims == pytest.approx((0.0, 0.0, 4.0, 4.0))
    with pytest.raises(KeyError, match="nope"):
        group_geometry(footprints, ["a", "nope"])
    with pytest.raises(ValueError, match="no cameras"):
        group_geometry(footprints, [])


def test_make_groups_uses_the_wkt_footprints():
    cams = _ring("Camera_", (0.0, 0.0), 2)
    cams[0].attributes[FOV_ATTRIBUTE] = "POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0))"
    cams[1].attributes[FOV_ATTRIBUTE] = "POLYGON ((2 0, 6 0, 6 4, 2 4, 2 0))"
    (group,) = make_groups(Calibration(sensors=cams), mode="all")
    assert group.name == "bev-sensor-all"
    assert group.cameras == ("Camera_00", "Camera_01")
    assert group.origin == pytest.approx((3.0, 2.0, 0.0))
    assert group.dimensions == pytest.approx((-1.0, -1.0, 7.0, 5.0))


# -- modes ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twelve() -> Calibration:
    return Calibration(sensors=_ring("Camera_", (0.0, 0.0), 12, radius=8.0))


def test_all_mode_is_one_group_of_every_camera(twelve):
    groups = make_groups(twelve, mode="all")
    assert [g.name for g in groups] == ["bev-sensor-all"]
    assert groups[0].cameras == tuple(twelve.camera_ids)
    fps = {c: floor_footprint(twelve.camera(c)) for c in twelve.camera_ids}
    assert (groups[0].origin, groups[0].dimensions) == group_geometry(fps, twelve.camera_ids)


def test_random_mode_follows_tao(twelve):
    groups = make_groups(twelve, mode="random", seed=7)
    assert [g.name for g in groups] == ["bev-sensor-random-0", "bev-sensor-random-1", "bev-sensor-random-2"]
    # The exact stream: size uniform in [5, 10], then cameras without replacement, from default_rng(seed).
    rng = np.random.default_rng(7)
    ids = twelve.camera_ids
    for g in groups:
        size = int(rng.integers(5, 11))
        assert g.cameras == tuple(sorted(ids[k] for k in rng.choice(len(ids), size=size, replace=False)))
        assert 5 <= len(g.cameras) <= 10 and len(set(g.cameras)) == len(g.cameras)

    assert make_groups(twelve, mode="random", seed=7) == groups
    assert [g.cameras for g in make_groups(twelve, mode="random", seed=8)] != [g.cameras for g in groups]
    shuffled = list(np.random.default_rng(1).permutation(ids))
    assert make_groups(twelve, shuffled, mode="random", seed=7) == groups
    more = make_groups(twelve, mode="random", seed=3, num_groups=5, group_size=(2, 3))
    assert len(more) == 5 and all(2 <= len(g.cameras) <= 3 for g in more)


def test_random_mode_caps_group_size_at_the_number_of_cameras():
    calib = Calibration(sensors=_ring("Camera_", (0.0, 0.0), 4))
    groups = make_groups(calib, mode="random", seed=0)
    assert len(groups) == 3 and all(g.cameras == tuple(calib.camera_ids) for g in groups)


@pytest.fixture(scope="module")
def two_clusters() -> Calibration:
    return Calibration(sensors=_ring("Camera_0", (0.0, 0.0), 3) + _ring("Camera_1", (100.0, 0.0), 3, phase=0.5))


def test_coverage_mode_separates_far_apart_clusters(two_clusters):
    groups = make_groups(two_clusters, mode="coverage")
    assert [g.name for g in groups] == ["bev-sensor-coverage-0", "bev-sensor-coverage-1"]
    assert [g.cameras for g in groups] == [
        ("Camera_000", "Camera_001", "Camera_002"),
        ("Camera_100", "Camera_101", "Camera_102"),
    ]
    assert groups[0].origin[0] == pytest.approx(0.0, abs=5.0)
    assert groups[1].origin[0] == pytest.approx(100.0, abs=5.0)
    assert groups[0].dimensions[2] < 50 < groups[1].dimensions[0]


def test_coverage_mode_respects_max_cameras_and_input_order(two_clusters):
    groups = make_groups(two_clusters, mode="coverage", max_cameras=2)
    members = [c for g in groups for c in g.cameras]
    assert sorted(members) == two_clusters.camera_ids  # a partition
    assert all(len(g.cameras) <= 2 for g in groups)
    assert all({c[:8] for c in g.cameras} in ({"Camera_0"}, {"Camera_1"}) for g in groups)  # never mixes clusters
    assert len(groups) == 4
    for order in (two_clusters.camera_ids[::-1], list(np.random.default_rng(3).permutation(two_clusters.camera_ids))):
        assert make_groups(two_clusters, order, mode="coverage", max_cameras=2) == groups
    subset = make_groups(two_clusters, ["Camera_102", "Camera_000"], mode="coverage")
    assert [g.cameras for g in subset] == [("Camera_000",), ("Camera_102",)]


def test_coverage_partition_grows_along_a_chain():
    # a-b-c-d overlap only their neighbours; e overlaps nobody.
    footprints = {k: box(3 * i, 0, 3 * i + 4, 4) for i, k in enumerate("abcd")} | {"e": box(100, 0, 101, 1)}
    assert coverage_partition(footprints, 8) == [("a", "b", "c", "d"), ("e",)]
    assert coverage_partition(footprints, 2) == [("a", "b"), ("c", "d"), ("e",)]
    assert coverage_partition(footprints, 1) == [("a",), ("b",), ("c",), ("d",), ("e",)]


def test_validation_errors(twelve):
    with pytest.raises(KeyError, match=r"Camera_99.*Camera_00, Camera_01"):
        make_groups(twelve, ["Camera_00", "Camera_99"], mode="all")
    with pytest.raises(ValueError, match="no cameras"):
        make_groups(twelve, [], mode="all")
    with pytest.raises(ValueError, match="duplicate"):
        make_groups(twelve, ["Camera_00", "Camera_00"], mode="all")
    with pytest.raises(ValueError, match="max_cameras"):
        make_groups(twelve, mode="coverage", max_cameras=0)
    for bad in ((6, 5), (0, 3), (5,), (5.0, 6)):
        with pytest.raises(ValueError, match="group_size"):
            make_groups(twelve, mode="random", group_size=bad)
    with pytest.raises(ValueError, match="num_groups"):
        make_groups(twelve, mode="random", num_groups=0)
    with pytest.raises(ValueError, match="mode"):
        make_groups(twelve, mode="sometimes")
    with pytest.raises(ValueError, match="dilation_m"):
        make_groups(twelve, mode="all", dilation_m=-1.0)


# -- manifest -------------------------------------------------------------------------------------------
def test_groups_json_round_trip(two_clusters):
    groups = make_groups(two_clusters, mode="coverage", max_cameras=2)
    text = json.dumps(groups_to_json(groups))
    assert groups_from_json(json.loads(text)) == groups
    assert BevGroup.from_json(groups[0].to_json()) == groups[0]
    g = BevGroup("x", ("b", "a"), (1, 2, 0), (0, 0, 1, 1))
    assert g.cameras == ("a", "b") and g.origin == (1.0, 2.0, 0.0)
    with pytest.raises(ValueError, match="duplicate group names"):
        groups_from_json([g.to_json(), g.to_json()])
    with pytest.raises(ValueError, match="missing keys"):
        groups_from_json({"groups": [{"name": "x"}]})
    with pytest.raises(ValueError, match="version"):
        groups_from_json({"version": 99, "groups": []})


# -- property -------------------------------------------------------------------------------------------
_camera = st.tuples(
    st.floats(-60, 60), st.floats(-60, 60), st.floats(2.0, 8.0),  # position
    st.floats(1.0, 15.0), st.floats(0, 2 * math.pi), st.floats(0.0, 2.0),  # target: distance, bearing, height
)


# CameraCalibration.from_pose divides by t_z for its homography, which is 0 when the camera's image plane passes
# through the world origin; irrelevant here.
@pytest.mark.filterwarnings("ignore:.*encountered in divide:RuntimeWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=st.lists(_camera, min_size=1, max_size=10), max_cameras=st.integers(1, 5))
def test_coverage_is_always_a_partition_into_overlapping_groups(layout, max_cameras):
    cams = []
    for i, (x, y, z, dist, bearing, tz) in enumerate(layout):
        target = [x + dist * math.cos(bearing), y + dist * math.sin(bearing), tz]
        cams.append(make_camera(f"Camera_{i:04d}", [x, y, z], target, W, H))
    calib = Calibration(sensors=cams)
    groups = make_groups(calib, mode="coverage", max_cameras=max_cameras, max_range_m=20.0)
    members = [c for g in groups for c in g.cameras]
    assert sorted(members) == calib.camera_ids
    assert all(1 <= len(g.cameras) <= max_cameras for g in groups)
    assert [g.name for g in groups] == [f"bev-sensor-coverage-{i}" for i in range(len(groups))]
    fps = {c.id: floor_footprint(c, max_range_m=20.0) for c in cams}
    for g in groups:
        for c in g.cameras if len(g.cameras) > 1 else ():
            others = shapely.union_all([fps[o] for o in g.cameras if o != c])
            assert fps[c].intersection(others).area > 0, (g, c)
    assert make_groups(calib, calib.camera_ids[::-1], mode="coverage", max_cameras=max_cameras,
                       max_range_m=20.0) == groups
