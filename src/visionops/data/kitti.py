"""KITTI 2D labels for DetectNet_v2, from the GT's ``2d bounding box visible``.

Layout: ``<kitti>/<split>/images/<Scene>_<camera>_<frame %05d>.jpg`` (the frame store's JPEG bytes,
not re-encoded) and ``labels/<same stem>.txt``, one line per object, the 15 KITTI fields::

    type truncated occluded alpha xmin ymin xmax ymax h w l x y z rotation_y

Only the fields DetectNet_v2 reads carry data: ``type`` (configurable name), ``truncated`` (fraction of
the projected 3D box outside the image, [0, 1]), ``occluded`` (from the visibility ratio = visible-box
area / full-box area: 0 if > 0.75, 1 if > 0.35, 2 otherwise, 3 when the GT has no full box), and the box
(pixels of the stored image). The 3D fields get KITTI's "not given" values (``alpha`` and ``rotation_y``
-10, dimensions -1, location -1000): the cameras are tilted, so KITTI's upright-camera 3D convention
does not apply, and the 3D truth lives in OVPKL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionops.data.box_projection import truncation, visibility_ratio
from visionops.data.calibration import CameraCalibration
from visionops.data.schema import ObjectAnnotation

NUM_FIELDS = 15
OCCLUSION_THRESHOLDS = (0.75, 0.35)
"""Visibility ratios above which an object counts as fully visible (0) and partly occluded (1)."""


class KittiLabelError(ValueError):
    """A KITTI label line is malformed; the message names the file and line."""


@dataclass(frozen=True)
class KittiObject:
    """One label line. ``box`` is ``(xmin, ymin, xmax, ymax)`` in pixels."""

    name: str
    truncated: float
    occluded: int
    box: tuple[float, float, float, float]

    def to_line(self) -> str:
        x1, y1, x2, y2 = self.box
        return (f"{self.name} {self.truncated:.2f} {self.occluded:d} -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
                "-1 -1 -1 -1000 -1000 -1000 -10")


def occlusion_level(visibility: float | None) -> int:
    """KITTI occlusion state from visible/full area: 0 fully visible, 1 partly, 2 largely, 3 unknown."""
    if visibility is None:
        return 3
    if visibility > OCCLUSION_THRESHOLDS[0]:
        return 0
    if visibility > OCCLUSION_THRESHOLDS[1]:
        return 1
    return 2


def scale_box(box: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Box in source pixels -> stored pixels, with the pixel-centre convention of :func:`ovpkl.scale_intrinsic`."""
    sx, sy = scale
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    return np.array([(x1 + 0.5) * sx - 0.5, (y1 + 0.5) * sy - 0.5, (x2 + 0.5) * sx - 0.5, (y2 + 0.5) * sy - 0.5])


def label_objects(
    objects: Sequence[ObjectAnnotation],
    camera: CameraCalibration,
    *,
    class_names: Mapping[str, str],
    scale: tuple[float, float] = (1.0, 1.0),
    min_width: float = 0.0,
    min_height: float = 0.0,
) -> tuple[list[KittiObject], int]:
    """KITTI objects of one camera frame and the number dropped for being smaller than the minimum size.

    Args:
        objects: GT objects of the frame (any camera); those without a visible box in ``camera`` are skipped.
        camera: the camera (source resolution).
        class_names: GT class -> KITTI name; other classes are skipped.
        scale: stored / source image size (x, y).
        min_width, min_height: minimum visible-box size in stored pixels.
    """
    labels: list[KittiObject] = []
    too_small = 0
    width, height = camera.width, camera.height
    rot, trans = camera.extrinsic[:, :3], camera.extrinsic[:, 3]
    for obj in objects:
        name = class_names.get(obj.object_type)
        visible = obj.bbox_visible.get(camera.id)
        if name is None or visible is None:
            continue
        box = scale_box(visible, scale)
        if box[2] - box[0] < min_width or box[3] - box[1] < min_height:
            too_small += 1
            continue
        full = None if obj.bbox_full is None else obj.bbox_full.get(camera.id)
        ratio = None if full is None else visibility_ratio(visible, full)
        trunc = truncation(obj.corners(), rot, trans, camera.intrinsic, width, height) if width and height else 0.0
        labels.append(KittiObject(name, round(trunc, 2), occlusion_level(ratio), tuple(float(v) for v in box)))
    return labels, too_small


def sample_stem(scene: str, camera_id: str, frame: int) -> str:
    return f"{scene}_{camera_id}_{frame:05d}"


def label_text(labels: Sequence[KittiObject]) -> str:
    """The content of a label file: one line per object, each ending in a newline ("" for no objects)."""
    return "".join(obj.to_line() + "\n" for obj in labels)


def write_sample_text(split_dir: str | os.PathLike, stem: str, jpeg: bytes, text: str) -> None:
    """Write ``images/<stem>.jpg`` and ``labels/<stem>.txt`` (empty for a frame with no objects).

    Plain writes, no per-file fsync + rename: the caller builds the whole KITTI folder in a temporary
    sibling that is swapped into place only when complete (per-file atomic writes cost ~2 ms each).
    """
    split_dir = Path(split_dir)
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    (split_dir / "labels").mkdir(parents=True, exist_ok=True)
    (split_dir / "images" / f"{stem}.jpg").write_bytes(jpeg)
    (split_dir / "labels" / f"{stem}.txt").write_text(text, encoding="utf-8")


def write_sample(split_dir: str | os.PathLike, stem: str, jpeg: bytes, labels: Sequence[KittiObject]) -> None:
    """:func:`write_sample_text` from label objects."""
    write_sample_text(split_dir, stem, jpeg, label_text(labels))


def parse_label_file(path: str | os.PathLike) -> list[KittiObject]:
    """Read a KITTI label file (15 or 16 fields per line; a 16th, the score, is ignored)."""
    path = Path(path)
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) not in (NUM_FIELDS, NUM_FIELDS + 1):
            raise KittiLabelError(f"{path}:{number}: expected {NUM_FIELDS} fields, got {len(parts)}: {line!r}")
        try:
            trunc, occ = float(parts[1]), int(float(parts[2]))
            box = tuple(float(v) for v in parts[4:8])
        except ValueError as exc:
            raise KittiLabelError(f"{path}:{number}: non-numeric field in {line!r}") from exc
        if box[2] < box[0] or box[3] < box[1]:
            raise KittiLabelError(f"{path}:{number}: xmax < xmin or ymax < ymin in {line!r}")
        out.append(KittiObject(parts[0], trunc, occ, box))
    return out
