"""Typed schema of the AI City / MTMC 2025 raw scene format.

A scene folder holds ``videos/<cam>.mp4``, ``depth_maps/<cam>.h5``, ``calibration.json``,
``ground_truth.json`` and ``map.png``. This module maps the two JSON files to dataclasses and back,
byte-compatible with the published files:

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


# --------------------------------------------------------------------------------------------------
# calibration.json
# --------------------------------------------------------------------------------------------------


def _parse_attribute(value: Any) -> Any:
    """Attribute values may be strings on disk: numbers come back as int/float, others unchanged."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return value
    return value


@dataclass
class CameraCalibration:
    """One sensor of ``calibration.json``.

    Attributes:
        id: camera id, equal to the video/depth file stem.
        intrinsic: (3, 3) K in pixels.
        extrinsic: (3, 4) ``[R | t]`` world -> camera (OpenCV axes), metres.
        camera_matrix: (3, 4) world -> pixel, equals ``intrinsic @ extrinsic``.
        homography: (3, 3) ground plane (x, y, z=0) metres -> pixel, columns 0, 1, 3 of camera_matrix.
        coordinates: (2,) camera position on the floor, metres.
        scale_factor: world metres -> map.png pixels.
        translation_to_global: (2,) added to world x, y before scaling to map pixels.
        attributes: name -> value (``fps``, ``frameWidth``, ``frameHeight``, ``direction``...).
        extra: any other keys of the sensor, kept for round trips.
    """

    id: str
    intrinsic: np.ndarray
    extrinsic: np.ndarray
    camera_matrix: np.ndarray
    homography: np.ndarray
    coordinates: np.ndarray
    scale_factor: float
    translation_to_global: np.ndarray
    attributes: dict[str, Any] = field(default_factory=dict)
    type: str = "camera"
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived quantities ----------------------------------------------------------------------
    @property
    def width(self) -> int | None:
        value = self.attributes.get("frameWidth")
        return None if value is None else int(value)

    @property
    def height(self) -> int | None:
        value = self.attributes.get("frameHeight")
        return None if value is None else int(value)

    @property
    def fps(self) -> float | None:
        value = self.attributes.get("fps")
        return None if value is None else float(value)

    @property
    def world_to_camera(self) -> np.ndarray:
        """(4, 4) homogeneous world -> camera transform."""
        out = np.eye(4)
        out[:3, :] = self.extrinsic
        return out

    @property
    def position(self) -> np.ndarray:
        """(3,) camera centre in world metres: -R^T t."""
        r, t = self.extrinsic[:, :3], self.extrinsic[:, 3]
        return -r.T @ t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points.

        Args:
            points: (N, 3) world metres.
        Returns:
            uv: (N, 2) pixel coordinates (meaningless where depth <= 0).
            depth: (N,) z in the camera frame, metres (distance to the image plane).
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ self.camera_matrix.T
        depth = hom[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = hom[:, :2] / depth[:, None]
        return uv, depth

    @classmethod
    def from_pose(
        cls,
        camera_id: str,
        intrinsic: np.ndarray,
        extrinsic: np.ndarray,
        *,
        width: int,
        height: int,
        fps: float,
        scale_factor: float,
        translation_to_global: np.ndarray,
        extra_attributes: Mapping[str, Any] | None = None,
    ) -> CameraCalibration:
        """Build a sensor entry with every derived matrix consistent with K and [R|t]."""
        intrinsic = np.asarray(intrinsic, dtype=np.float64)
        extrinsic = np.asarray(extrinsic, dtype=np.float64)
        camera_matrix = intrinsic @ extrinsic
        homography = camera_matrix[:, [0, 1, 3]]
        homography = homography / homography[2, 2]
        r, t = extrinsic[:, :3], extrinsic[:, 3]
        position = -r.T @ t
        forward = r[2]  # camera +z axis in world coordinates
        attributes: dict[str, Any] = {
            "fps": fps,
            "direction": round(math.degrees(math.atan2(forward[1], forward[0])) % 360.0, 4),
            "direction3d": ",".join(f"{v:.6f}" for v in forward),
            "frameWidth": int(width),
            "frameHeight": int(height),
        }
        attributes.update(extra_attributes or {})
        return cls(
            id=camera_id,
            intrinsic=intrinsic,
            extrinsic=extrinsic,
            camera_matrix=camera_matrix,
            homography=homography,
            coordinates=position[:2].copy(),
            scale_factor=float(scale_factor),
            translation_to_global=np.asarray(translation_to_global, dtype=np.float64),
            attributes=attributes,
        )

    # -- JSON --------------------------------------------------------------------------------------
    _KNOWN_KEYS = (
        "type",
        "id",
        "coordinates",
        "scaleFactor",
        "translationToGlobalCoordinates",
        "attributes",
        "intrinsicMatrix",
        "extrinsicMatrix",
        "cameraMatrix",
        "homography",
    )

    @classmethod
    def from_json(cls, obj: Any, source: str, index: int) -> CameraCalibration:
        if not isinstance(obj, Mapping):
            raise SchemaError(f"{source}: sensors[{index}] is not an object")
        cam_id = obj.get("id")
        if not isinstance(cam_id, str) or not cam_id:
            raise SchemaError(f"{source}: sensors[{index}] key 'id': expected the camera id string")
        where = f"{source}: sensor {cam_id!r}"
        for key in ("intrinsicMatrix", "extrinsicMatrix", "cameraMatrix"):
            if key not in obj:
                raise SchemaError(f"{where}: missing key {key!r}")
        intrinsic = _as_matrix(obj["intrinsicMatrix"], (3, 3), f"{where}, key 'intrinsicMatrix'")
        extrinsic = _as_matrix(obj["extrinsicMatrix"], (3, 4), f"{where}, key 'extrinsicMatrix'")
        camera_matrix = _as_matrix(obj["cameraMatrix"], (3, 4), f"{where}, key 'cameraMatrix'")
        if "homography" in obj:
            homography = _as_matrix(obj["homography"], (3, 3), f"{where}, key 'homography'")
        else:
            homography = camera_matrix[:, [0, 1, 3]] / camera_matrix[2, 3]
        coords = obj.get("coordinates", {"x": 0.0, "y": 0.0})
        translation = obj.get("translationToGlobalCoordinates", {"x": 0.0, "y": 0.0})
        try:
            coordinates = np.array([float(coords["x"]), float(coords["y"])])
            translation_to_global = np.array([float(translation["x"]), float(translation["y"])])
            scale_factor = float(obj.get("scaleFactor", 1.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"{where}: bad coordinates/translationToGlobalCoordinates/scaleFactor") from exc
        attributes: dict[str, Any] = {}
        raw_attrs = obj.get("attributes", [])
        if not isinstance(raw_attrs, list):
            raise SchemaError(f"{where}, key 'attributes': expected a list of {{name, value}}")
        for i, attr in enumerate(raw_attrs):
            if not isinstance(attr, Mapping) or "name" not in attr:
                raise SchemaError(f"{where}, key 'attributes[{i}]': expected {{'name': ..., 'value': ...}}")
            attributes[str(attr["name"])] = _parse_attribute(attr.get("value"))
        extra = {k: v for k, v in obj.items() if k not in cls._KNOWN_KEYS}
        return cls(
            id=cam_id,
            intrinsic=intrinsic,
            extrinsic=extrinsic,
            camera_matrix=camera_matrix,
            homography=homography,
            coordinates=coordinates,
            scale_factor=scale_factor,
            translation_to_global=translation_to_global,
            attributes=attributes,
            type=str(obj.get("type", "camera")),
            extra=extra,
        )

    def to_json(self) -> dict[str, Any]:
        # Attribute values written as strings, as the on-disk schema does.
        out: dict[str, Any] = {
            "type": self.type,
            "id": self.id,
            "coordinates": {"x": round(float(self.coordinates[0]), 6), "y": round(float(self.coordinates[1]), 6)},
            "scaleFactor": self.scale_factor,
            "translationToGlobalCoordinates": {
                "x": round(float(self.translation_to_global[0]), 6),
                "y": round(float(self.translation_to_global[1]), 6),
            },
            "attributes": [{"name": k, "value": str(v)} for k, v in self.attributes.items()],
            "intrinsicMatrix": _round_list(self.intrinsic, 9),
            "extrinsicMatrix": _round_list(self.extrinsic, 9),
            "cameraMatrix": _round_list(self.camera_matrix, 9),
            "homography": _round_list(self.homography, 12),
        }
        out.update(self.extra)
        return out


@dataclass
class Calibration:
    """The whole ``calibration.json``: sensors in file order plus top-level fields."""

    sensors: list[CameraCalibration]
    calibration_type: str = "cartesian"
    extra: dict[str, Any] = field(default_factory=dict)

    def camera(self, camera_id: str) -> CameraCalibration:
        for sensor in self.sensors:
            if sensor.id == camera_id:
                return sensor
        known = ", ".join(sorted(s.id for s in self.sensors))
        raise KeyError(f"camera {camera_id!r} not in calibration (cameras: {known})")

    @property
    def camera_ids(self) -> list[str]:
        """Camera sensor ids sorted as strings (never parse numbers out of them)."""
        return sorted(s.id for s in self.sensors if s.type == "camera")

    @classmethod
    def from_json(cls, data: Any, source: str = "calibration.json") -> Calibration:
        if not isinstance(data, Mapping):
            raise SchemaError(f"{source}: expected an object with a 'sensors' list")
        sensors = data.get("sensors")
        if not isinstance(sensors, list) or not sensors:
            raise SchemaError(f"{source}: key 'sensors' must be a non-empty list")
        parsed = [CameraCalibration.from_json(s, source, i) for i, s in enumerate(sensors)]
        ids = [s.id for s in parsed]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise SchemaError(f"{source}: duplicate sensor ids {dupes}")
        extra = {k: v for k, v in data.items() if k not in ("sensors", "calibrationType")}
        return cls(sensors=parsed, calibration_type=str(data.get("calibrationType", "cartesian")), extra=extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calibrationType": self.calibration_type}
        out.update(self.extra)
        out["sensors"] = [s.to_json() for s in self.sensors]
        return out


def world_to_map_pixels(xy: np.ndarray, scale_factor: float, translation: np.ndarray, map_height: int) -> np.ndarray:
    """(N, 2) world metres -> map.png pixels: ``px = (x + tx) s``, ``py = H - (y + ty) s`` (y up in world)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    px = (xy[:, 0] + translation[0]) * scale_factor
    py = map_height - (xy[:, 1] + translation[1]) * scale_factor
    return np.stack([px, py], axis=1)
