"""Analytic ray casting: rays against boxes (slab method) and against the room (floor, walls, ceiling).

All functions take one ray origin (the camera centre) and many directions. Directions are scaled so
their camera-z component is 1 (see :func:`cameras.pixel_rays`), so a hit's ray parameter t is its
z-depth. Nothing here knows about colours: callers get t, which box was hit and which face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visionops.data.box_projection import NEAR  # noqa: F401  (near plane: closer hits are ignored)

SURFACE_FLOOR, SURFACE_CEILING = 0, 1
SURFACE_WALL_X0, SURFACE_WALL_X1, SURFACE_WALL_Y0, SURFACE_WALL_Y1 = 2, 3, 4, 5


def safe_inverse(dirs: np.ndarray) -> np.ndarray:
    """(N, 3) -> 1 / dirs. A zero component gives +-inf, which the slab test handles (a ray parallel to a
    slab is inside it for all t or for none); only a ray lying exactly in a face plane yields NaN,
    which compares False and counts as a miss."""
    with np.errstate(divide="ignore"):
        return 1.0 / dirs


@dataclass
class BoxHits:
    """Nearest hit of each ray among a set of boxes.

    Attributes:
        t: (N,) ray parameter (z-depth) of the hit; +inf where the ray misses every box.
        index: (N,) int index of the box hit, -1 where none.
        axis: (N,) int8 axis (0, 1, 2) of the face hit: the face normal is ``-sign(dir[axis])`` along it.
    """

    t: np.ndarray
    index: np.ndarray
    axis: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return self.index >= 0


def slab(origin: np.ndarray, inv_dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit parameters of N rays through P axis-aligned boxes.

    Args:
        origin: (3,) ray origin, in the boxes' frame.
        inv_dirs: (N, 3) reciprocal ray directions (:func:`safe_inverse`).
        lo, hi: (P, 3) box bounds.
    Returns:
        t_near, t_far: (N, P); the ray hits box p iff ``t_near <= t_far`` (and t_far > 0).
    """
    dtype = inv_dirs.dtype
    t_near = t_far = None
    with np.errstate(invalid="ignore"):  # 0 * inf on a face plane -> NaN -> a miss
        for a in range(3):
            inv = inv_dirs[:, a : a + 1]
            t1 = (lo[None, :, a] - origin[a]).astype(dtype) * inv
            t2 = (hi[None, :, a] - origin[a]).astype(dtype) * inv
            if t_near is None:
                t_near, t_far = np.minimum(t1, t2), np.maximum(t1, t2)
            else:
                np.maximum(t_near, np.minimum(t1, t2), out=t_near)
                np.minimum(t_far, np.maximum(t1, t2), out=t_far)
    return t_near, t_far


def entry_axis(origin: np.ndarray, dirs: np.ndarray, inv_dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray
               ) -> np.ndarray:
    """(N,) int axis of the face through which each ray enters its box (lo, hi: (N, 3) per ray).

    The entry face is on the slab entered last, i.e. the axis with the largest per-axis entry time.
    """
    near_face = np.where(dirs > 0, lo, hi)
    with np.errstate(invalid="ignore"):
        t_axis = (near_face - origin[None].astype(dirs.dtype)) * inv_dirs
    # A ray parallel to a slab never enters it through that axis' faces.
    t_axis = np.where((dirs == 0) | np.isnan(t_axis), -np.inf, t_axis)
    return np.argmax(t_axis, axis=1)


def cast_boxes(origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray, near: float = NEAR,
               inv_dirs: np.ndarray | None = None) -> BoxHits:
    """Nearest of P axis-aligned boxes along each of N rays.

    Args:
        origin: (3,) ray origin in the boxes' frame (outside all boxes).
        dirs: (N, 3) directions, camera-z component 1 (so t is z-depth), in the boxes' frame.
        lo, hi: (P, 3) box bounds, metres.
        near: hits with t < near are ignored.
    """
    if inv_dirs is None:
        inv_dirs = safe_inverse(dirs)
    n = len(inv_dirs)
    if len(lo) == 0 or n == 0:
        return BoxHits(np.full(n, np.inf, dtype=inv_dirs.dtype), np.full(n, -1, dtype=np.int64),
                       np.zeros(n, dtype=np.int8))
    t_near, t_far = slab(origin, inv_dirs, lo, hi)
    t = np.where((t_near <= t_far) & (t_near >= near), t_near, np.inf)
    if t.shape[1] == 1:
        index = np.zeros(n, dtype=np.int64)
        best = t[:, 0]
    else:
        index = np.argmin(t, axis=1)
        best = np.take_along_axis(t, index[:, None], axis=1)[:, 0]
    hit = np.isfinite(best)
    index = np.where(hit, index, -1)
    axis = np.zeros(n, dtype=np.int8)
    if np.any(hit):
        rows = np.flatnonzero(hit)
        axis[rows] = entry_axis(origin, dirs[rows], inv_dirs[rows], lo[index[rows]], hi[index[rows]])
    return BoxHits(best, index, axis)


def face_normals(dirs: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(N, 3) unit normals of the faces hit (pointing back towards the ray origin)."""
    n = np.zeros(dirs.shape, dtype=np.float32)
    rows = np.arange(len(dirs))
    n[rows, axis] = -np.sign(dirs[rows, axis])
    return n


def cast_room(origin: np.ndarray, dirs: np.ndarray, floor_min: np.ndarray, floor_max: np.ndarray,
              height: float) -> tuple[np.ndarray, np.ndarray]:
    """Where rays from inside the room leave it: the floor, the ceiling or one of the four walls.

    Args:
        origin: (3,) inside the box ``floor_min x floor_max x [0, height]``.
        dirs: (N, 3) directions.
    Returns:
        t: (N,) exit parameter; surface: (N,) int8 SURFACE_* id.
    """
    inv = safe_inverse(dirs)
    lo = np.array([floor_min[0], floor_min[1], 0.0])
    hi = np.array([floor_max[0], floor_max[1], height])
    t = np.full(len(dirs), np.inf, dtype=dirs.dtype)
    surface = np.zeros(len(dirs), dtype=np.int8)
    ids = ((SURFACE_WALL_X0, SURFACE_WALL_X1), (SURFACE_WALL_Y0, SURFACE_WALL_Y1),
           (SURFACE_FLOOR, SURFACE_CEILING))
    for a in range(3):
        positive = dirs[:, a] > 0
        bound = np.where(positive, hi[a], lo[a]).astype(dirs.dtype)
        # A ray parallel to this pair of surfaces never meets them.
        ta = np.where(dirs[:, a] != 0, (bound - origin[a]) * inv[:, a], np.inf)
        better = ta < t
        t = np.where(better, ta, t)
        surface = np.where(better, np.where(positive, ids[a][1], ids[a][0]), surface).astype(np.int8)
    return t, surface


def cast_plane(origin: np.ndarray, dirs: np.ndarray, axis: int, value: float) -> np.ndarray:
    """(N,) parameter where rays meet the plane ``X[axis] = value``; +inf behind or parallel."""
    d = dirs[:, axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (value - origin[axis]) / d
    return np.where(np.isfinite(t) & (t > 0), t, np.inf).astype(dirs.dtype)


def to_box_frame(origin: np.ndarray, dirs: np.ndarray, centre: np.ndarray, yaw: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Express a ray bundle in the frame of a box at ``centre`` (3,) turned by ``yaw`` about z.

    Returns the (3,) origin and (N, 3) directions in the box frame (x = the box's heading). The z
    component, and so the meaning of t as z-depth, is unchanged.
    """
    c, s = np.cos(yaw), np.sin(yaw)
    o = np.asarray(origin, dtype=np.float64) - centre
    o_local = np.array([c * o[0] + s * o[1], -s * o[0] + c * o[1], o[2]])
    d_local = np.empty_like(dirs)
    cf, sf = np.asarray(c, dtype=dirs.dtype), np.asarray(s, dtype=dirs.dtype)
    d_local[:, 0] = cf * dirs[:, 0] + sf * dirs[:, 1]
    d_local[:, 1] = -sf * dirs[:, 0] + cf * dirs[:, 1]
    d_local[:, 2] = dirs[:, 2]
    return o_local, d_local
