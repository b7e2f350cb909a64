"""BEV groups: the sub-scenes of cameras that TAO's Sparse4D OVPKL conversion trains on.

A scene may have up to ~20 cameras; Sparse4D sees a few at a time. Each group has an ``origin`` (the
centroid of the union of its cameras' floor footprints, each dilated by ``dilation_m``; z = 0) and
``dimensions`` (the ``[xmin, ymin, xmax, ymax]`` bounds of that union). Coordinates of the group are later
recentred by subtracting the origin (x, y only).

Grouping modes (:func:`make_groups`):

* ``all``: one group ``bev-sensor-all`` of every camera.
* ``random``: TAO's: ``num_groups`` groups ``bev-sensor-random-{i}`` of 5-10 randomly sampled cameras.
* ``coverage``: deterministic partition into groups ``bev-sensor-coverage-{i}`` of at most ``max_cameras``
  cameras whose floor footprints overlap.

Floor footprints (:func:`floor_footprint`) are the ``fieldOfViewPolygon`` WKT attribute when the sensor has
one, else the part of the floor under the camera's view frustum cut between heights 1 m and 3 m.
World frame: metres, z up, floor at z = 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import shapely
import shapely.wkt
from shapely.errors import ShapelyError
from shapely.geometry import MultiPoint, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from visionops.data.calibration import Calibration, CameraCalibration

FOV_ATTRIBUTE = "fieldOfViewPolygon"
"""Sensor attribute holding the camera's floor footprint as a WKT POLYGON in world metres."""

GROUPS_FORMAT_VERSION = 1

GroupingMode = Literal["all", "random", "coverage"]
MODES: tuple[str, ...] = ("all", "random", "coverage")

# Footprints that merely touch (or overlap by float noise) are not "overlapping" for the coverage mode.
_MIN_OVERLAP_M2 = 1e-6


# -- floor footprints -----------------------------------------------------------------------------------
def floor_footprint(
    camera: CameraCalibration,
    *,
    max_range_m: float = 40.0,
    heights: Sequence[float] = (1.0, 3.0),
    samples: int = 16,
) -> Polygon | MultiPolygon:
    """The camera's footprint on the floor (x, y in world metres).

    The ``fieldOfViewPolygon`` WKT attribute wins when present (a self-intersecting one is repaired, so a
    MultiPolygon may come back). Otherwise it is computed from the calibration: the projection onto the
    floor of the view frustum between the lowest and highest of ``heights`` and within ``max_range_m``
    horizontally of the camera. The frustum of a pinhole camera is the pyramid of the rays through the
    image border, so its cut with the plane z = h is the intersection of four half-planes; that cut is
    clipped to the range disk, and the footprint is the convex hull of the cuts at every height (plus the
    camera centre when it lies between the heights, for a camera mounted inside the slab). The projection
    of (frustum ∩ slab ∩ range cylinder) is convex and equals that hull, so steep and near-horizontal
    cameras need no special case: rays above the horizon reach no plane but the range disk still bounds
    the cut of the rays just below it.

    Args:
        camera: the sensor; needs ``frameWidth``/``frameHeight`` attributes when no WKT is given.
        max_range_m: horizontal range cut, metres.
        heights: plane heights z, metres (TAO: 1 m and 3 m).
        samples: vertices per quarter of the range circle (its polygon has ``4 * samples`` vertices).
    Returns:
        shapely Polygon in world metres; empty when the frustum does not reach the slab within range
        (e.g. a camera looking at the ceiling).
    Raises:
        ValueError: bad WKT attribute, missing image size, bad arguments; the message names the camera.
    """
    if FOV_ATTRIBUTE in camera.attributes:
        return _wkt_footprint(camera)
    if not (max_range_m > 0 and math.isfinite(max_range_m)):
        raise ValueError(f"max_range_m must be a positive number of metres, got {max_range_m!r}")
    hs = [float(h) for h in heights]
    if not hs or not all(math.isfinite(h) for h in hs):
        raise ValueError(f"heights must be a non-empty sequence of finite metres, got {heights!r}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
    width, height = camera.width, camera.height
    if width is None or height is None or width < 1 or height < 1:
        raise ValueError(
            f"camera {camera.id!r}: no image size (attributes 'frameWidth'/'frameHeight') to compute the "
            f"floor footprint from, and no {FOV_ATTRIBUTE!r} attribute"
        )

    centre = camera.position
    normals = _frustum_normals(camera, width, height)
    angles = np.linspace(0.0, 2.0 * math.pi, 4 * samples, endpoint=False)
    disk = centre[:2] + max_range_m * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = [centre[None, :2]] if min(hs) <= centre[2] <= max(hs) else []
    for h in hs:
        section = disk
        for n in normals:
            # n . ((x, y, h) - c) >= 0  <=>  n_xy . p + (n_z (h - c_z) - n_xy . c_xy) >= 0
            section = _clip_half_plane(section, n[:2], n[2] * (h - centre[2]) - n[:2] @ centre[:2])
        points.append(section)
    hull = MultiPoint(np.concatenate(points, axis=0)).convex_hull if points else Polygon()
    # Fewer than three non-collinear points: the frustum only grazes the slab, no floor area.
    return hull if isinstance(hull, Polygon) else Polygon()


def _wkt_footprint(camera: CameraCalibration) -> Polygon | MultiPolygon:
    """The ``fieldOfViewPolygon`` attribute parsed, 2-D, repaired if self-intersecting."""
    value = camera.attributes[FOV_ATTRIBUTE]
    where = f"camera {camera.id!r}, attribute {FOV_ATTRIBUTE!r}"
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a WKT POLYGON string, got {type(value).__name__} {value!r}")
    try:
        geom = shapely.wkt.loads(value)
    except (ShapelyError, ValueError) as exc:
        raise ValueError(f"{where}: unparsable WKT {value[:80]!r}: {exc}") from exc
    geom = shapely.force_2d(geom)
    if not isinstance(geom, Polygon | MultiPolygon):
        raise ValueError(f"{where}: expected a WKT POLYGON, got {geom.geom_type}")
    if not geom.is_valid:
        geom = _polygonal(shapely.make_valid(geom))
    if geom.is_empty or geom.area <= 0:
        raise ValueError(f"{where}: empty polygon {value[:80]!r}")
    return geom


def _polygonal(geom: BaseGeometry) -> Polygon | MultiPolygon:
    """The polygonal parts of a repaired geometry (make_valid may add stray lines or points)."""
    parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon | MultiPolygon) and not g.is_empty]
    merged = shapely.union_all(parts) if parts else Polygon()
    return merged if isinstance(merged, Polygon | MultiPolygon) else Polygon()


def _frustum_normals(camera: CameraCalibration, width: int, height: int) -> np.ndarray:
    """(4, 3) inward normals, world frame, of the frustum's side planes through the camera centre.

    Image corners use the pixel-centre convention: the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
    A world point X is in the (forward) frustum iff ``n . (X - c) >= 0`` for all four normals.
    """
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    rays_cam = np.concatenate([corners, np.ones((4, 1))], axis=1) @ np.linalg.inv(camera.intrinsic).T
    rays = rays_cam @ camera.extrinsic[:, :3]  # camera -> world: R^T d, row-wise
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    inside = rays.sum(axis=0)  # a direction strictly inside the pyramid
    normals = np.cross(rays, np.roll(rays, -1, axis=0))
    # Flip to point inwards whatever the handedness of K (e.g. a negative focal length).
    normals *= np.sign(normals @ inside)[:, None]
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _clip_half_plane(poly: np.ndarray, a: np.ndarray, b: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of the convex polygon ``poly`` (N, 2) where ``a . p + b >= 0``."""
    if len(poly) == 0:
        return poly
    vals = poly @ a + b
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if vals[i] >= 0:
            out.append(poly[i])
        if (vals[i] >= 0) != (vals[j] >= 0):
            t = vals[i] / (vals[i] - vals[j])
            out.append(poly[i] + t * (poly[j] - poly[i]))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


# -- groups ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BevGroup:
    """One BEV group (sub-scene) of cameras.

    Attributes:
        name: ``bev-sensor-{mode}[-{i}]``.
        cameras: member camera ids, sorted as strings (normalised on construction).
        origin: (x, y, 0.0) world metres, subtracted from the group's x, y coordinates.
        dimensions: (xmin, ymin, xmax, ymax) world metres of the dilated footprints' union.
    """

    name: str
    cameras: tuple[str, ...]
    origin: tuple[float, float, float]
    dimensions: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"BEV group name must be a non-empty string, got {self.name!r}")
        cameras = tuple(sorted(str(c) for c in self.cameras))
        if not cameras:
            raise ValueError(f"BEV group {self.name!r}: no cameras")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"BEV group {self.name!r}: duplicate cameras in {list(cameras)}")
        origin = tuple(float(v) for v in self.origin)
        dimensions = tuple(float(v) for v in self.dimensions)
        if len(origin) != 3 or len(dimensions) != 4:
            raise ValueError(
                f"BEV group {self.name!r}: origin needs 3 values and dimensions 4, got {origin} and {dimensions}"
            )
        object.__setattr__(self, "cameras", cameras)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "dimensions", dimensions)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cameras": list(self.cameras),
            "origin": list(self.origin),
            "dimensions": list(self.dimensions),
        }

    @classmethod
    def from_json(cls, obj: Any) -> BevGroup:
        if not isinstance(obj, Mapping):
            raise ValueError(f"BEV group: expected an object, got {type(obj).__name__}")
        missing = [k for k in ("name", "cameras", "origin", "dimensions") if k not in obj]
        if missing:
            raise ValueError(f"BEV group {obj.get('name')!r}: missing keys {missing}")
        try:
            return cls(
                name=obj["name"],
                cameras=tuple(obj["cameras"]),
                origin=tuple(obj["origin"]),
                dimensions=tuple(obj["dimensions"]),
            )
        except TypeError as exc:
            raise ValueError(f"BEV group {obj.get('name')!r}: bad value: {exc}") from exc


def group_geometry(
    footprints: Mapping[str, BaseGeometry],
    cameras: Iterable[str],
    dilation_m: float = 1.0,
) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """TAO's group origin and dimensions.

    Args:
        footprints: camera id -> floor footprint polygon, world metres.
        cameras: the group's members.
        dilation_m: each footprint is buffered by this many metres before the union.
    Returns:
        origin: (x, y, 0.0), the centroid of the union of the dilated footprints.
        dimensions: (xmin, ymin, xmax, ymax) of that union.
    Raises:
        KeyError: a camera has no footprint. ValueError: no cameras, or the union is empty.
    """
    members = sorted(set(cameras))  # sorted: the union (and so its float noise) never depends on input order
    if not members:
        raise ValueError("group_geometry: no cameras")
    missing = [c for c in members if c not in footprints]
    if missing:
        raise KeyError(f"no floor footprint for cameras {missing} (have: {', '.join(sorted(footprints))})")
    union = shapely.union_all([footprints[c].buffer(dilation_m) for c in members])
    if union.is_empty:
        raise ValueError(f"cameras {members}: their floor footprints are empty (no floor in view)")
    centroid = union.centroid
    xmin, ymin, xmax, ymax = union.bounds
    return (float(centroid.x), float(centroid.y), 0.0), (float(xmin), float(ymin), float(xmax), float(ymax))


def make_groups(
    calibration: Calibration,
    camera_ids: Sequence[str] | None = None,
    *,
    mode: GroupingMode,
    max_cameras: int = 8,
    num_groups: int = 3,
    group_size: tuple[int, int] = (5, 10),
    seed: int = 0,
    dilation_m: float = 1.0,
    max_range_m: float = 40.0,
) -> list[BevGroup]:
    """Split a scene's cameras into BEV groups.

    Args:
        calibration: the scene's calibration (footprints come from it).
        camera_ids: cameras to group (default: every camera sensor). Their order never matters.
        mode: ``all``, ``random`` (TAO) or ``coverage`` (see the module docstring).
        max_cameras: ``coverage``: the most cameras per group.
        num_groups: ``random``: how many groups.
        group_size: ``random``: inclusive (min, max) cameras per group, capped at the number of cameras.
        seed: ``random``: seed of ``numpy.random.default_rng``.
        dilation_m: footprint buffer for the origin/dimensions, metres.
        max_range_m: range cut of computed footprints, metres.
    Returns:
        The groups, in a deterministic order. ``all`` and ``coverage`` cover every camera once; ``random``
        groups may share cameras and miss some, as TAO's do.
    Raises:
        KeyError: an unknown camera id. ValueError: no cameras or a bad parameter (named in the message).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    _check_int("max_cameras", max_cameras, 1)
    _check_int("num_groups", num_groups, 1)
    if (
        not isinstance(group_size, Sequence)
        or len(group_size) != 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in group_size)
        or not 1 <= group_size[0] <= group_size[1]
    ):
        raise ValueError(f"group_size must be (min, max) integers with 1 <= min <= max, got {group_size!r}")
    if not (dilation_m >= 0 and math.isfinite(dilation_m)):
        raise ValueError(f"dilation_m must be >= 0 metres, got {dilation_m!r}")
    if not (max_range_m > 0 and math.isfinite(max_range_m)):
        raise ValueError(f"max_range_m must be > 0 metres, got {max_range_m!r}")

    if isinstance(camera_ids, str):  # a lone id would otherwise be read as its characters
        raise TypeError(f"camera_ids must be a sequence of ids, got the string {camera_ids!r}")
    known = calibration.camera_ids
    ids = known if camera_ids is None else list(camera_ids)
    if not ids:
        raise ValueError("no cameras to group")
    unknown = sorted(set(ids) - set(known))
    if unknown:
        raise KeyError(f"unknown camera ids {unknown} (cameras in calibration: {', '.join(known)})")
    dupes = sorted({c for c in ids if ids.count(c) > 1})
    if dupes:
        raise ValueError(f"duplicate camera ids {dupes}")
    ids = sorted(ids)  # every mode works on the sorted ids, so input order never matters

    footprints = {c: floor_footprint(calibration.camera(c), max_range_m=max_range_m) for c in ids}

    def group(name: str, members: Iterable[str]) -> BevGroup:
        members = tuple(members)
        origin, dimensions = group_geometry(footprints, members, dilation_m)
        return BevGroup(name=name, cameras=members, origin=origin, dimensions=dimensions)

    if mode == "all":
        return [group("bev-sensor-all", ids)]
    if mode == "random":
        rng = np.random.default_rng(seed)
        out = []
        for i in range(num_groups):
            # Draw, then cap: the size draws for a seed are the same whatever the number of cameras.
            size = min(int(rng.integers(group_size[0], group_size[1] + 1)), len(ids))
            members = rng.choice(len(ids), size=size, replace=False)
            out.append(group(f"bev-sensor-random-{i}", (ids[k] for k in members)))
        return out
    partition = coverage_partition(footprints, max_cameras)
    return [group(f"bev-sensor-coverage-{i}", members) for i, members in enumerate(partition)]


def coverage_partition(footprints: Mapping[str, BaseGeometry], max_cameras: int) -> list[tuple[str, ...]]:
    """Deterministic partition of cameras into groups of <= ``max_cameras`` with overlapping footprints.

    Greedy: seed a group with the unassigned camera of the largest total overlap area with the other
    unassigned cameras (the densest remaining spot; ties by id), then repeatedly add the unassigned camera
    whose footprint overlaps the group's union the most, while that overlap is positive and the group is
    not full. Growing against the union (not pairwise with the seed) lets a group follow a chain of
    cameras along an aisle. A camera overlapping nobody is a group of its own.

    Args:
        footprints: camera id -> floor footprint, world metres.
        max_cameras: the most cameras per group (>= 1).
    Returns:
        Groups as sorted id tuples, ordered by their first id; every camera is in exactly one.
    """
    _check_int("max_cameras", max_cameras, 1)
    ids = sorted(footprints)
    # Pairwise overlap areas, computed once in canonical (sorted) order so float noise cannot depend on
    # the order the caller listed the cameras in.
    overlap: dict[str, dict[str, float]] = {c: {} for c in ids}
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            area = float(footprints[a].intersection(footprints[b]).area)
            if area > _MIN_OVERLAP_M2:
                overlap[a][b] = overlap[b][a] = area

    unassigned = set(ids)
    groups: list[tuple[str, ...]] = []
    while unassigned:
        seed = min(unassigned, key=lambda c: (-sum(v for k, v in overlap[c].items() if k in unassigned), c))
        members = [seed]
        unassigned.discard(seed)
        union = footprints[seed]
        while len(members) < max_cameras:
            # Only cameras overlapping some member can overlap the union: a cheap candidate filter.
            candidates = sorted({k for m in members for k in overlap[m] if k in unassigned})
            scored = [(float(union.intersection(footprints[c]).area), c) for c in candidates]
            scored = [(area, c) for area, c in scored if area > _MIN_OVERLAP_M2]
            if not scored:
                break
            _, best = min(scored, key=lambda s: (-s[0], s[1]))
            members.append(best)
            unassigned.discard(best)
            union = union.union(footprints[best])
        groups.append(tuple(sorted(members)))
    return sorted(groups)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# -- manifest -------------------------------------------------------------------------------------------
def groups_to_json(groups: Iterable[BevGroup]) -> dict[str, Any]:
    """``bev_groups.json`` content: ``{"version": 1, "groups": [group.to_json(), ...]}``."""
    return {"version": GROUPS_FORMAT_VERSION, "groups": [g.to_json() for g in groups]}


def groups_from_json(obj: Any) -> list[BevGroup]:
    """Inverse of :func:`groups_to_json`; a bare list of groups is accepted too.

    Raises:
        ValueError: not a manifest, an unknown version, a bad group, or duplicate group names.
    """
    if isinstance(obj, Mapping):
        version = obj.get("version", GROUPS_FORMAT_VERSION)
        if version != GROUPS_FORMAT_VERSION:
            raise ValueError(f"bev_groups.json: unsupported version {version!r} (expected {GROUPS_FORMAT_VERSION})")
        obj = obj.get("groups")
    if not isinstance(obj, list):
        raise ValueError("bev_groups.json: expected {'groups': [...]} or a list of groups")
    groups = [BevGroup.from_json(g) for g in obj]
    names = [g.name for g in groups]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"bev_groups.json: duplicate group names {dupes}")
    return groups
