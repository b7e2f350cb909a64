"""2D annotations: the amodal box from projected 3D corners and the visible box from rendered pixels.

Pixel coordinates follow the calibration: pixel centres at integers, x right, y down. The amodal box
(``"2d bounding box"``) is the bounding rectangle of the projection of the part of the 3D box in front
of the near plane, clipped to ``[0, W-1] x [0, H-1]``; the visible box (``"2d bounding box visible"``) is
the bounding rectangle of the centres of the pixels where the object wins the z-test. A visible pixel's
centre projects inside the object, so the visible box always lies inside the amodal box.
"""

from __future__ import annotations

import numpy as np

# The projection helpers live in data/box_projection.py (the converter uses them too); re-exported here.
from visionops.data.box_projection import (  # noqa: F401
    BOX_EDGES,
    NEAR,
    amodal_box,
    clip_box_to_near,
    clip_to_image,
    project_extent,
)


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
