"""Static cameras: ids, placement on the walls, intrinsics K, extrinsics [R|t], floor footprints.

Conventions (OpenCV, as calibration.json): camera x right, y down, z forward; pixel centres at integer
coordinates, so pixel (u, v) sees the ray through ``K^-1 [u, v, 1]`` and the image spans
``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from visionops.data.synthetic.layout import Layout


@dataclass
class CameraSpec:
    """One camera.

    Attributes:
        id: camera id (file stem).
        K: (3, 3) intrinsics, pixels.
        R: (3, 3) world -> camera rotation; rows are the camera's x (right), y (down), z (forward) axes
            in world coordinates.
        t: (3,) world -> camera translation, metres (``X_cam = R X + t``).
        width, height: pixels.
        hfov_deg: horizontal field of view, degrees.
        exposure: overall gain; white_balance: (3,) per-channel gains (camera-to-camera differences).
        vignetting: strength of the radial darkening, 0..1.
    """

    id: str
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int
    hfov_deg: float = 70.0
    exposure: float = 1.0
    white_balance: np.ndarray | None = None
    vignetting: float = 0.25

    @property
    def position(self) -> np.ndarray:
        """(3,) camera centre, world metres."""
        return -self.R.T @ self.t

    @property
    def extrinsic(self) -> np.ndarray:
        """(3, 4) [R | t] world -> camera."""
        return np.concatenate([self.R, self.t[:, None]], axis=1)

    @property
    def gains(self) -> np.ndarray:
        """(3,) exposure times white balance."""
        wb = np.ones(3) if self.white_balance is None else self.white_balance
        return self.exposure * np.asarray(wb, dtype=np.float64)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world -> (N, 3) camera coordinates."""
        return np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world -> (N, 2) pixels and (N,) z-depth (pixels meaningless where z <= 0)."""
        pc = self.to_camera(points)
        uvw = pc @ self.K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return uvw[:, :2] / uvw[:, 2:3], pc[:, 2]


def camera_ids(count: int, style: str = "four_digit") -> list[str]:
    """Camera ids in the real dataset's two styles.

    ``four_digit``: ``Camera_0000, Camera_0001, ...``; ``two_digit``: ``Camera, Camera_01, Camera_02, ...``
    (the first camera has no suffix).
    """
    if style == "four_digit":
        return [f"Camera_{i:04d}" for i in range(count)]
    if style == "two_digit":
        return ["Camera"] + [f"Camera_{i:02d}" for i in range(1, count)]
    raise ValueError(f"camera_naming must be 'four_digit' or 'two_digit', got {style!r}")


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """(3, 3) pinhole K with square pixels, principal point at the image centre (pixel-centre coords)."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def look_at(position: np.ndarray, target: np.ndarray, roll_rad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """R (3, 3), t (3,) of a camera at ``position`` looking at ``target`` with world z up in the image.

    ``roll_rad`` turns the image about the optical axis (a slightly crooked mount).
    """
    position = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("camera looks straight up or down; give it a horizontal component")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    right, down = c * right + s * down, -s * right + c * down
    R = np.stack([right, down, forward])
    return R, -R @ position


def ring_projections(count: int, width: int, height: int, focal: float, radius: float, mount_height: float,
                     phase: float = 0.0) -> np.ndarray:
    """(count, 4, 4) world->pixel matrices of pinhole cameras on a horizontal ring, all looking at the origin.

    Camera ``i`` stands at angle ``phase + 2 pi i / count`` on a circle of ``radius`` metres, ``mount_height``
    metres up; K has ``focal`` pixels and the principal point at (width / 2, height / 2). A fixed rig for
    model tests and benchmarks: ``pad4(K) @ [R | t]`` maps homogeneous world points to (u d, v d, d, 1).
    """
    mats = np.zeros((count, 4, 4))
    for i in range(count):
        angle = phase + 2 * math.pi * i / count
        rotation, translation = look_at([radius * math.cos(angle), radius * math.sin(angle), mount_height],
                                        [0.0, 0.0, 0.0])
        k = np.eye(4)
        k[:3, :3] = [[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]
        extrinsic = np.eye(4)
        extrinsic[:3, :3], extrinsic[:3, 3] = rotation, translation
        mats[i] = k @ extrinsic
    return mats


def pixel_rays(camera: CameraSpec, dtype=np.float32) -> np.ndarray:
    """(H, W, 3) world ray directions through every pixel centre, scaled so the camera-z component is 1.

    With this scaling the ray parameter t of a hit *is* its z-depth (distance to the image plane).
    The direction ``R^T K^-1 [u, v, 1]`` is affine in (u, v), so it is built from three vectors by
    broadcasting instead of a per-pixel matrix product.
    """
    m = camera.R.T @ np.linalg.inv(camera.K)  # columns: d/du, d/dv, and the ray through pixel (0, 0)
    u = np.arange(camera.width, dtype=dtype)[None, :, None]
    v = np.arange(camera.height, dtype=dtype)[:, None, None]
    rays = u * m[:, 0].astype(dtype) + m[:, 2].astype(dtype)
    return rays + v * m[:, 1].astype(dtype)


def footprint_polygon(camera: CameraSpec, layout: Layout, samples: int = 24):
    """shapely Polygon: the part of the floor inside the camera's field of view (ignores occluders).

    Rays along the image border are intersected with the floor; rays above the horizon are cut at 100 m
    in their horizontal direction, then the polygon is clipped to the floor rectangle.
    """
    from shapely.geometry import Polygon, box  # noqa: PLC0415

    w, h = camera.width - 1, camera.height - 1
    t = np.linspace(0.0, 1.0, samples, endpoint=False)
    border = np.concatenate([
        np.stack([t * w, np.zeros_like(t)], 1),
        np.stack([np.full_like(t, w), t * h], 1),
        np.stack([(1 - t) * w, np.full_like(t, h)], 1),
        np.stack([np.zeros_like(t), (1 - t) * h], 1),
    ])
    d = np.concatenate([border, np.ones((len(border), 1))], 1) @ np.linalg.inv(camera.K).T @ camera.R
    c = camera.position
    points = []
    for di in d:
        if di[2] < -1e-6:
            s = -c[2] / di[2]
            p = c[:2] + s * di[:2]
            if np.linalg.norm(p - c[:2]) <= 100.0:
                points.append(p)
                continue
        horiz = di[:2] / max(np.linalg.norm(di[:2]), 1e-9)
        points.append(c[:2] + 100.0 * horiz)
    poly = Polygon(points).buffer(0)
    floor = box(*layout.floor_min, *layout.floor_max)
    return poly.intersection(floor)


def footprints_overlap(polygons: list, min_area: float = 1.0) -> list[bool]:
    """For each footprint: does it share at least ``min_area`` m^2 of floor with another camera's?"""
    out = []
    for i, a in enumerate(polygons):
        out.append(any(a.intersection(b).area >= min_area for j, b in enumerate(polygons) if j != i))
    return out


def place_cameras(rng: np.random.Generator, layout: Layout, ids: list[str], width: int, height: int,
                  max_tries: int = 100) -> list[CameraSpec]:
    """Mount ``len(ids)`` cameras on the walls, 3-6 m high, looking down into the floor.

    The cameras are spread evenly around the perimeter (random phase and jitter), 0.3 m inside the walls,
    each aimed at a point of the central floor area, so their views converge and overlap. A draw whose
    footprints do not each overlap another camera's is redrawn.
    """
    fmin, fmax = layout.floor_min, layout.floor_max
    size = fmax - fmin
    perimeter = 2 * float(size.sum())
    inset = 0.3
    for _ in range(max_tries):
        phase = rng.uniform(0, 1)
        cams = []
        for i, cam_id in enumerate(ids):
            s = ((i + phase + rng.uniform(-0.15, 0.15)) / len(ids)) % 1.0 * perimeter
            # Walk the perimeter: bottom edge, right edge, top edge, left edge; stay 1 m from corners.
            if s < size[0]:
                pos = [fmin[0] + np.clip(s, 1, size[0] - 1), fmin[1] + inset]
            elif s < size[0] + size[1]:
                pos = [fmax[0] - inset, fmin[1] + np.clip(s - size[0], 1, size[1] - 1)]
            elif s < 2 * size[0] + size[1]:
                pos = [fmax[0] - np.clip(s - size[0] - size[1], 1, size[0] - 1), fmax[1] - inset]
            else:
                pos = [fmin[0] + inset, fmax[1] - np.clip(s - 2 * size[0] - size[1], 1, size[1] - 1)]
            position = np.array([*pos, rng.uniform(3.0, 6.0)])
            centre = (fmin + fmax) / 2
            target = np.array([*(centre + rng.uniform(-0.25, 0.25, size=2) * size), 0.0])
            hfov = float(rng.uniform(65.0, 85.0))
            R, t = look_at(position, target, roll_rad=float(rng.normal(0.0, math.radians(1.0))))
            cams.append(CameraSpec(
                id=cam_id,
                K=intrinsics(width, height, hfov),
                R=R,
                t=t,
                width=width,
                height=height,
                hfov_deg=hfov,
                exposure=float(np.exp(rng.normal(0.0, 0.12))),
                white_balance=np.exp(rng.normal(0.0, 0.045, size=3)),
                vignetting=float(rng.uniform(0.1, 0.35)),
            ))
        if len(cams) < 2 or all(footprints_overlap([footprint_polygon(c, layout) for c in cams])):
            return cams
    raise RuntimeError(f"could not place {len(ids)} cameras with overlapping views in {max_tries} tries")
