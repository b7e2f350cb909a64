"""2D annotations: the amodal box from projected 3D corners and the visible box from rendered pixels.

Pixel coordinates follow the calibration: pixel centres at integers, x right, y down. The amodal box
(``"2d bounding box"``) is the bounding rectangle of the projection of the part of the 3D box in front
of the near plane, clipped to ``[0, W-1] x [0, H-1]``; the visible box (``"2d bounding box visible"``) is
the bounding rectangle of the centres of the pixels where the object wins the z-test. A visible pixel's
centre projects inside the object, so the visible box always lies inside the amodal box.
"""

from __future__ import annotations

import numpy as np

from visionops.data.synthetic.raycast import NEAR

# The 12 edges of a box_corners() box: corner index = 4*ix + 2*iy + iz, edges join indices one bit apart.
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


def amodal_box(corners_world: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, width: int,
               height: int, near: float = NEAR) -> np.ndarray | None:
    """(4,) amodal 2D box of a 3D box (corners (8, 3) world) in one camera, or None if out of view."""
    cam = np.asarray(corners_world, dtype=np.float64) @ R.T + t
    return clip_to_image(project_extent(clip_box_to_near(cam, near), K), width, height)


def pixel_rect(box: np.ndarray) -> tuple[int, int, int, int] | None:
    """Integer pixel ranges ``(u0, v0, u1, v1)`` (inclusive start, exclusive end) whose centres lie in
    ``box``; None when no pixel centre does."""
    u0, v0 = int(np.ceil(box[0])), int(np.ceil(box[1]))
    u1, v1 = int(np.floor(box[2])) + 1, int(np.floor(box[3])) + 1
    if u1 <= u0 or v1 <= v0:
        return None
    return u0, v0, u1, v1


def visible_box(mask: np.ndarray, u0: int, v0: int) -> tuple[int, np.ndarray | None]:
    """Pixel count and ``[xmin, ymin, xmax, ymax]`` of the True pixels of ``mask`` (h, w) whose top-left
    pixel is (u0, v0) in the image; the box is None when the mask is empty."""
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return 0, None
    rows = np.flatnonzero(mask.any(axis=1))
    count = int(np.count_nonzero(mask))
    return count, np.array([u0 + cols[0], v0 + rows[0], u0 + cols[-1], v0 + rows[-1]], dtype=np.float64)
