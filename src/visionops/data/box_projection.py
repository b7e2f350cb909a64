"""Projecting 3D boxes into a camera: the amodal 2D box and how much of it the image cuts off.

Pixel coordinates follow the calibration: pixel centres at integers, x right, y down. The amodal box
(AI City's ``"2d bounding box"``) is the bounding rectangle of the projection of the part of the 3D box in
front of the near plane, clipped to ``[0, W-1] x [0, H-1]``. The synthetic renderer writes its GT with
these functions and the converter (KITTI truncation, OVPKL checks) reads them back with the same ones.
"""

from __future__ import annotations

import numpy as np

NEAR = 0.05
"""Near plane in metres of z-depth: box parts closer to the camera than this are cut away."""

# The 12 edges of a schema.box_corners() box: corner index = 4*ix + 2*iy + iz, edges join indices one bit apart.
BOX_EDGES = np.array([(i, i | b) for i in range(8) for b in (1, 2, 4) if not i & b])


def clip_box_to_near(corners_cam: np.ndarray, near: float = NEAR) -> np.ndarray:
    """Vertices of a box's part in front of the plane z = near.

    Args:
        corners_cam: (8, 3) corners in camera coordinates, ordered as :func:`schema.box_corners`.
    Returns:
        (M, 3) the corners with z >= near plus the points where the box edges cross z = near; their
        projection's bounding rectangle is that of the clipped box (M = 0 if all is behind).
    """
    front = corners_cam[:, 2] >= near
    points = [corners_cam[front]]
    a, b = corners_cam[BOX_EDGES[:, 0]], corners_cam[BOX_EDGES[:, 1]]
    crossing = (a[:, 2] >= near) != (b[:, 2] >= near)
    if np.any(crossing):
        a, b = a[crossing], b[crossing]
        s = (near - a[:, 2]) / (b[:, 2] - a[:, 2])
        points.append(a + s[:, None] * (b - a))
    return np.concatenate(points, axis=0)


def project_extent(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray | None:
    """(4,) unclipped ``[xmin, ymin, xmax, ymax]`` of points (M, 3) in front of the camera; None if M = 0."""
    if len(points_cam) == 0:
        return None
    uvw = points_cam @ K.T
    uv = uvw[:, :2] / uvw[:, 2:3]
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def clip_to_image(extent: np.ndarray | None, width: int, height: int) -> np.ndarray | None:
    """Clip ``[xmin, ymin, xmax, ymax]`` to ``[0, W-1] x [0, H-1]``; None if it misses the image."""
    if extent is None:
        return None
    xmin, ymin, xmax, ymax = extent
    if xmax < 0 or ymax < 0 or xmin > width - 1 or ymin > height - 1:
        return None
    return np.array([max(xmin, 0.0), max(ymin, 0.0), min(xmax, width - 1.0), min(ymax, height - 1.0)])


def unclipped_box(corners_world: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray,
                  near: float = NEAR) -> np.ndarray | None:
    """(4,) projected extent of a 3D box (corners (8, 3) world) cut at the near plane, not clipped to the
    image; None when the box is wholly behind the camera. ``R`` (3, 3), ``t`` (3,): world -> camera."""
    cam = np.asarray(corners_world, dtype=np.float64) @ R.T + t
    return project_extent(clip_box_to_near(cam, near), K)


def amodal_box(corners_world: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, width: int,
               height: int, near: float = NEAR) -> np.ndarray | None:
    """(4,) amodal 2D box of a 3D box (corners (8, 3) world) in one camera, or None if out of view."""
    return clip_to_image(unclipped_box(corners_world, R, t, K, near), width, height)


def box_area(box: np.ndarray | None) -> float:
    """Area in px^2 of ``[xmin, ymin, xmax, ymax]`` (0 for None or degenerate boxes)."""
    if box is None:
        return 0.0
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def visibility_ratio(visible: np.ndarray, full: np.ndarray) -> float:
    """Visible-box area / full-box area in [0, 1] (0 when the full box has no area)."""
    full_area = box_area(full)
    return float(np.clip(box_area(visible) / full_area, 0.0, 1.0)) if full_area > 0 else 0.0


def truncation(corners_world: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, width: int,
               height: int, near: float = NEAR) -> float:
    """Fraction in [0, 1] of the projected box outside the image (KITTI's "truncated"); 1 when out of view.

    Measured on the projected bounding rectangles: ``1 - area(clipped) / area(unclipped)``. A box cut by
    the near plane projects large, so it counts as strongly truncated, as it should.
    """
    full = unclipped_box(corners_world, R, t, K, near)
    area = box_area(full)
    if area <= 0.0:
        return 1.0
    return float(np.clip(1.0 - box_area(clip_to_image(full, width, height)) / area, 0.0, 1.0))
