"""Typed schema of the AI City / MTMC 2025 ``calibration.json``.

``{"calibrationType": ..., "sensors": [...]}`` with ``intrinsicMatrix`` (3x3 K), ``extrinsicMatrix``
(3x4 world->camera, OpenCV axes: x right, y down, z forward), ``cameraMatrix`` (3x4 = K @ extrinsic) and
``homography`` (3x3 ground plane z=0 -> image). Attribute values may be strings on disk; they are parsed
to numbers where they look like numbers. Units: metres, pixels, degrees for ``direction``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionops.data.schema import SchemaError, _as_matrix, _round_list


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
