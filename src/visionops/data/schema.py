"""Typed schema of the AI City / MTMC 2025 ``ground_truth.json`` (calibration: :mod:`.calibration`).

A scene folder holds ``videos/<cam>.mp4``, ``depth_maps/<cam>.h5``, ``calibration.json``,
``ground_truth.json`` and ``map.png``. This module and :mod:`visionops.data.calibration` map the two JSON
files to dataclasses and back, compatible with the published files:

* ``ground_truth.json``: ``{"<frame>": [object, ...]}`` with frame ids as decimal strings and the
  *spaced* keys of the real files (``"object type"``, ``"3d location"``, ...). The underscore spelling
  of the dataset card (``object_type``...) is accepted on read.
* ``calibration.json``: ``{"calibrationType": ..., "sensors": [...]}`` with ``intrinsicMatrix`` (3x3 K),
  ``extrinsicMatrix`` (3x4 world->camera, OpenCV axes: x right, y down, z forward),
  ``cameraMatrix`` (3x4 = K @ extrinsic) and ``homography`` (3x3 ground plane z=0 -> image).
  Attribute values may be strings on disk; they are parsed to numbers where they look like numbers.

Units: metres in world coordinates, pixels in images, radians for angles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASS_NAMES_2025: tuple[str, ...] = (
    "Person",
    "Forklift",
    "NovaCarter",
    "Transporter",
    "FourierGR1T2",
    "AgilityDigit",
)
"""The six 2025 classes; their index is the class id of the AI City evaluation."""

# Real files use spaced keys; the HF dataset card shows underscores. Canonical -> accepted spellings.
_GT_KEY_ALIASES: dict[str, tuple[str, ...]] = {
    "object type": ("object type", "object_type"),
    "object id": ("object id", "object_id"),
    "object name": ("object name", "object_name"),
    "3d location": ("3d location", "3d_location"),
    "3d bounding box scale": ("3d bounding box scale", "3d_bounding_box_scale"),
    "3d bounding box rotation": ("3d bounding box rotation", "3d_bounding_box_rotation"),
    "2d bounding box visible": ("2d bounding box visible", "2d_bounding_box_visible"),
    "2d bounding box": ("2d bounding box", "2d_bounding_box"),
}
_REQUIRED_GT_KEYS = ("object type", "object id", "3d location", "3d bounding box scale", "3d bounding box rotation")


class SchemaError(ValueError):
    """A raw-format file does not match the schema. The message names the file, key and frame."""


def _where(source: str, frame: str | None = None, key: str | None = None, index: int | None = None) -> str:
    parts = [source]
    if frame is not None:
        parts.append(f"frame {frame}")
    if index is not None:
        parts.append(f"object #{index}")
    if key is not None:
        parts.append(f"key {key!r}")
    return ", ".join(parts)


def _get_alias(obj: Mapping[str, Any], canonical: str) -> Any:
    for spelling in _GT_KEY_ALIASES[canonical]:
        if spelling in obj:
            return obj[spelling]
    return None


def _as_vector(value: Any, length: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: expected {length} numbers, got {value!r}") from exc
    if arr.shape != (length,):
        raise SchemaError(f"{where}: expected {length} numbers, got shape {arr.shape} ({value!r})")
    if not np.all(np.isfinite(arr)):
        raise SchemaError(f"{where}: non-finite value in {value!r}")
    return arr


def _as_matrix(value: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: expected a {shape[0]}x{shape[1]} matrix, got {value!r}") from exc
    if arr.shape != shape:
        raise SchemaError(f"{where}: expected a {shape[0]}x{shape[1]} matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SchemaError(f"{where}: non-finite entry")
    return arr


def _round_list(arr: np.ndarray, digits: int = 6) -> list:
    """Nested list of rounded floats: stable, compact JSON without numpy types."""
    return np.round(np.asarray(arr, dtype=np.float64), digits).tolist()


# --------------------------------------------------------------------------------------------------
# ground_truth.json
# --------------------------------------------------------------------------------------------------


@dataclass
class ObjectAnnotation:
    """One object in one frame.

    Attributes:
        object_type: class name, e.g. ``"Person"``.
        object_id: track id, stable over time and across cameras; unique per class only.
        location: (3,) box centroid in world metres.
        scale: (3,) ``[w, l, h]`` metres; w along the object's local x, l along local y, h along z.
        rotation: (3,) ``[pitch, roll, yaw]`` radians; yaw about +z, heading of local +x.
        bbox_visible: {camera id: (4,) ``[xmin, ymin, xmax, ymax]`` px} of the visible pixels.
        bbox_full: {camera id: (4,)} amodal box from the projected 3D corners, clipped to the image;
            ``None`` when the file has no such key.
        object_name: optional global instance name.
    """

    object_type: str
    object_id: int
    location: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray
    bbox_visible: dict[str, np.ndarray] = field(default_factory=dict)
    bbox_full: dict[str, np.ndarray] | None = None
    object_name: str | None = None

    @property
    def yaw(self) -> float:
        return float(self.rotation[2])

    @classmethod
    def from_json(cls, obj: Any, source: str, frame: str, index: int) -> ObjectAnnotation:
        if not isinstance(obj, Mapping):
            raise SchemaError(f"{_where(source, frame, index=index)}: expected an object (dict), got {obj!r}")
        for canonical in _REQUIRED_GT_KEYS:
            if _get_alias(obj, canonical) is None:
                spellings = " or ".join(repr(s) for s in _GT_KEY_ALIASES[canonical])
                raise SchemaError(f"{_where(source, frame, index=index)}: missing key {spellings}")
        object_type = _get_alias(obj, "object type")
        if not isinstance(object_type, str) or not object_type:
            raise SchemaError(f"{_where(source, frame, 'object type', index)}: expected a class name string")
        raw_id = _get_alias(obj, "object id")
        try:
            object_id = int(raw_id)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{_where(source, frame, 'object id', index)}: not an integer: {raw_id!r}") from exc
        if isinstance(raw_id, float) and not raw_id.is_integer():
            raise SchemaError(f"{_where(source, frame, 'object id', index)}: not an integer: {raw_id!r}")

        def vec(key: str) -> np.ndarray:
            return _as_vector(_get_alias(obj, key), 3, _where(source, frame, key, index))

        scale = vec("3d bounding box scale")
        if np.any(scale <= 0):
            raise SchemaError(f"{_where(source, frame, '3d bounding box scale', index)}: sizes must be > 0")

        def boxes(key: str) -> dict[str, np.ndarray] | None:
            value = _get_alias(obj, key)
            if value is None:
                return None
            if not isinstance(value, Mapping):
                raise SchemaError(f"{_where(source, frame, key, index)}: expected {{camera: [x1,y1,x2,y2]}}")
            out = {}
            for cam, box in value.items():
                where = _where(source, frame, f"{key}[{cam}]", index)
                b = _as_vector(box, 4, where)
                if b[2] < b[0] or b[3] < b[1]:
                    raise SchemaError(f"{where}: xmax < xmin or ymax < ymin in {box!r}")
                out[str(cam)] = b
            return out

        name = _get_alias(obj, "object name")
        return cls(
            object_type=object_type,
            object_id=object_id,
            location=vec("3d location"),
            scale=scale,
            rotation=vec("3d bounding box rotation"),
            bbox_visible=boxes("2d bounding box visible") or {},
            bbox_full=boxes("2d bounding box"),
            object_name=None if name is None else str(name),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "object type": self.object_type,
            "object id": int(self.object_id),
            "3d location": _round_list(self.location),
            "3d bounding box scale": _round_list(self.scale),
            "3d bounding box rotation": _round_list(self.rotation),
            "2d bounding box visible": {c: _round_list(b, 2) for c, b in sorted(self.bbox_visible.items())},
        }
        if self.bbox_full is not None:
            out["2d bounding box"] = {c: _round_list(b, 2) for c, b in sorted(self.bbox_full.items())}
        if self.object_name is not None:
            out["object name"] = self.object_name
        return out

    def corners(self) -> np.ndarray:
        """(8, 3) world coordinates of the box corners (pitch/roll applied as R = Rz @ Ry @ Rx)."""
        return box_corners(self.location, self.scale, self.rotation)


def rotation_matrix(pitch: float, roll: float, yaw: float) -> np.ndarray:
    """(3, 3) R = Rz(yaw) @ Ry(roll) @ Rx(pitch), the evaluator's convention."""
    cx, sx = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(roll), math.sin(roll)
    cz, sz = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def box_corners(location: np.ndarray, scale: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(8, 3) corners of a box centred at ``location`` (3,), sizes ``[w, l, h]`` on local x, y, z."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    local = signs * (np.asarray(scale, dtype=np.float64) / 2.0)
    r = rotation_matrix(*np.asarray(rotation, dtype=np.float64))
    return local @ r.T + np.asarray(location, dtype=np.float64)


GroundTruth = dict[int, list[ObjectAnnotation]]
"""Frame id (0-based) -> objects. Frames without objects may be absent: use ``.get(f, [])``."""


def ground_truth_from_json(data: Any, source: str = "ground_truth.json") -> GroundTruth:
    """Parse the loaded JSON of a ``ground_truth.json`` file; raises :class:`SchemaError`."""
    if not isinstance(data, Mapping):
        raise SchemaError(f"{source}: expected an object keyed by frame id, got {type(data).__name__}")
    out: GroundTruth = {}
    for key, objects in data.items():
        if not (isinstance(key, str) and key.isdigit()):
            raise SchemaError(f"{source}: frame key {key!r} is not a decimal frame number")
        if not isinstance(objects, list):
            raise SchemaError(f"{_where(source, key)}: expected a list of objects")
        parsed = [ObjectAnnotation.from_json(o, source, key, i) for i, o in enumerate(objects)]
        seen: set[tuple[str, int]] = set()
        for obj in parsed:
            track = (obj.object_type, obj.object_id)
            if track in seen:
                raise SchemaError(
                    f"{_where(source, key, 'object id')}: ({obj.object_type}, {obj.object_id}) appears twice"
                )
            seen.add(track)
        out[int(key)] = parsed
    return dict(sorted(out.items()))


def ground_truth_to_json(gt: GroundTruth) -> dict[str, list[dict[str, Any]]]:
    """Inverse of :func:`ground_truth_from_json`; frame keys as decimal strings in ascending order."""
    return {str(int(f)): [o.to_json() for o in objs] for f, objs in sorted(gt.items())}
