"""OVPKL: TAO's pickle of per-frame infos for Sparse4D, one file per scene BEV group.

A file is ``{"metadata": {...}, "infos": [info, ...]}`` with the field names and meanings of the TAO
Sparse4D model card. One ``info`` per kept frame:

=====================  =========================================================================
``frame_idx``          source frame id (the key of ground_truth.json; frames may be subsampled)
``cams``               {camera id: camera entry, see below}
``scene_name``         ``"<Scene>+<group>"``
``timestamp``          seconds, ``frame_idx / source fps``
``token``              ``"<scene_name>__%09d" % frame_idx``
``group_name``         BEV group name (``bev-sensor-...``)
``instance_inds``      (N,) int64 GT ``object id`` (unique per class only, as in the GT)
``asset_inds``         (N,) int64 index of the object in ``object_ids.json`` (unique over the dataset)
``gt_boxes``           (N, 7) float64 ``[x, y, z, dx, dy, dz, heading]``: centre in the BEV frame (m),
                       sizes = GT ``[w, l, h]`` (m), heading in rad wrapped to [-pi, pi)
``gt_names``           (N,) str class names
``gt_velocity``        (N, 3) float64 m/s: ``(loc_t - loc_{t-1}) x fps`` on consecutive *source* frames,
                       0 where the object is absent at t-1 or moves faster than ``max_speed_mps``
``valid_flag``         (N,) bool: centre within ``max_range_m`` of the group origin
``gt_visibility``      list of N dicts {camera id: visible-box area / full-box area} over the group's
                       cameras; 0 where not visible, -1 where the GT has no full box for that camera
=====================  =========================================================================

Camera entry: ``data_path`` = (frame-store h5 path, ``rgb/rgb_%05d.jpg``), ``depth_map_path`` = (same h5,
``distance_to_image_plane_png/distance_to_image_plane_%05d.png``), ``sample_data_token`` =
``"<token>+<camera>"``, ``cam_intrinsic`` (3, 3) K of the *stored* frames, ``sensor2world_transform``
(4, 4). **As in TAO, ``sensor2world_transform`` holds the world -> camera transform** (of the BEV frame),
despite its name: ``pad4(cam_intrinsic) @ sensor2world_transform`` maps BEV points to pixels.

Conventions (decided once; tests prove them):

* BEV frame = world translated by the group origin: ``x' = x - ox``, ``y' = y - oy``, z unchanged; no
  rotation or scaling. The origin is stored in ``metadata["bev_origin"]`` so predictions map back with
  :func:`bev_to_world`.
* **Heading is the GT yaw, not negated.** TAO's converter writes ``-yaw`` (with a "check object
  orientation" TODO). The 2025 GT and the AI City evaluator rotate boxes by ``R = Rz(yaw)`` with the
  width on local x, and so do we: the box ``[x, y, z, w, l, h, heading]`` turned into corners with
  ``Rz(heading)`` projects onto each camera's ``2d bounding box`` (tests/data/test_ovpkl.py). Negating it
  would mirror every rotated box the model's key points are sampled from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionops.data import safe_pickle
from visionops.data.bev_groups import BevGroup
from visionops.data.box_projection import visibility_ratio
from visionops.data.frame_store import depth_store_key, rgb_key
from visionops.data.schema import GroundTruth, ObjectAnnotation

DATASET_VERSION = "2025"
SCHEMA_VERSION = "aicity_ovpkl/v1"
OBJECT_IDS_FILE = "object_ids.json"

INFO_KEYS: tuple[str, ...] = (
    "frame_idx", "cams", "scene_name", "timestamp", "token", "group_name", "instance_inds", "asset_inds",
    "gt_boxes", "gt_names", "gt_velocity", "valid_flag", "gt_visibility",
)
CAMERA_KEYS: tuple[str, ...] = (
    "data_path", "depth_map_path", "sample_data_token", "cam_intrinsic", "sensor2world_transform",
)
METADATA_KEYS: tuple[str, ...] = ("version", "split_type", "schema_version", "class_names")


class OvpklError(ValueError):
    """An OVPKL file does not have the expected structure; the message names the file and the key."""


@dataclass(frozen=True)
class CameraSource:
    """One camera as the OVPKL infos reference it.

    Attributes:
        camera_id: camera id (file stem).
        store_path: frame-store h5 path as written into ``data_path`` (relative to the data root).
        intrinsic: (3, 3) K of the stored (possibly resized) frames, pixels.
        world_to_camera: (4, 4) world -> camera (OpenCV axes), metres.
    """

    camera_id: str
    store_path: str
    intrinsic: np.ndarray
    world_to_camera: np.ndarray


@dataclass
class InfoStats:
    """Counts gathered while building one group's infos (reported by the convert stage)."""

    frames: int = 0
    boxes: int = 0
    dropped_invisible: int = 0
    dropped_class: int = 0
    invalid_range: int = 0
    speed_outliers: int = 0
    max_speed_mps: float = 0.0
    per_class: dict[str, int] = field(default_factory=dict)


def scale_intrinsic(intrinsic: np.ndarray, source_size: tuple[int, int], target_size: tuple[int, int]) -> np.ndarray:
    """(3, 3) K for frames resized from ``source_size`` to ``target_size`` (both (width, height)).

    Pixel centres sit at integers and resizers map pixel *areas*, so ``u' = (u + 0.5) s - 0.5``.
    """
    sx = target_size[0] / source_size[0]
    sy = target_size[1] / source_size[1]
    scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return scale @ np.asarray(intrinsic, dtype=np.float64)


def recentre_world_to_camera(world_to_camera: np.ndarray, origin: Sequence[float]) -> np.ndarray:
    """(4, 4) transform from the BEV frame (world minus ``origin``) to the camera: ``w2c @ T(+origin)``."""
    shift = np.eye(4)
    shift[:3, 3] = np.asarray(origin, dtype=np.float64)
    return np.asarray(world_to_camera, dtype=np.float64) @ shift


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(angle, dtype=np.float64) + math.pi) % (2 * math.pi) - math.pi


def bev_to_world(boxes: np.ndarray, origin: Sequence[float]) -> np.ndarray:
    """Boxes (N, >=7) in a group's BEV frame -> world: adds the origin to x, y, z; the rest unchanged."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    out[:, :3] += np.asarray(origin, dtype=np.float64)[:3]
    return out


def world_to_bev(boxes: np.ndarray, origin: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`bev_to_world`."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    out[:, :3] -= np.asarray(origin, dtype=np.float64)[:3]
    return out


def asset_key(scene: str, obj: ObjectAnnotation) -> str:
    """Dataset-wide identity of a GT object: its ``object name`` when the GT has one, else scene/class/id."""
    if obj.object_name:
        return f"{scene}/{obj.object_name}"
    return f"{scene}/{obj.object_type}/{obj.object_id}"


def ovpkl_filename(scene: str, group: str, split: str) -> str:
    return f"{scene}+{group}_infos_{split}.pkl"


def _visibility(obj: ObjectAnnotation, cameras: Sequence[str]) -> dict[str, float]:
    out = {}
    for cam in cameras:
        visible = obj.bbox_visible.get(cam)
        if visible is None:
            out[cam] = 0.0
            continue
        full = None if obj.bbox_full is None else obj.bbox_full.get(cam)
        if full is None:
            out[cam] = -1.0
            continue
        out[cam] = visibility_ratio(visible, full)
    return out


def build_infos(
    *,
    scene: str,
    group: BevGroup,
    cameras: Mapping[str, CameraSource],
    frame_ids: Sequence[int],
    ground_truth: GroundTruth | None,
    fps: float,
    classes: Sequence[str],
    asset_index: Mapping[str, int],
    max_range_m: float = 40.0,
    max_speed_mps: float = 5.0,
) -> tuple[list[dict[str, Any]], InfoStats]:
    """The infos of one (scene, BEV group), one per frame of ``frame_ids``.

    Args:
        cameras: every camera of the scene; only ``group.cameras`` are used.
        ground_truth: None for scenes without GT (test split): infos then carry empty GT arrays.
        fps: source frame rate (timestamps and velocities).
        classes: GT classes kept; other objects are dropped.
        asset_index: :func:`asset_key` -> dataset-wide index (``object_ids.json``).
    """
    origin = np.asarray(group.origin, dtype=np.float64)
    group_cams = list(group.cameras)
    missing = [c for c in group_cams if c not in cameras]
    if missing:
        raise KeyError(f"scene {scene}: BEV group {group.name} names cameras {missing} the scene does not have")
    scene_name = f"{scene}+{group.name}"
    keep = set(classes)
    # Shared across frames: pickle memoises repeated objects, so static calibration is stored once.
    intrinsics = {c: np.asarray(cameras[c].intrinsic, dtype=np.float64) for c in group_cams}
    transforms = {c: recentre_world_to_camera(cameras[c].world_to_camera, origin) for c in group_cams}
    stats = InfoStats()
    infos = []
    for frame in frame_ids:
        frame = int(frame)
        token = f"{scene_name}__{frame:09d}"
        cams = {
            c: {
                "data_path": (cameras[c].store_path, rgb_key(frame)),
                "depth_map_path": (cameras[c].store_path, depth_store_key(frame)),
                "sample_data_token": f"{token}+{c}",
                "cam_intrinsic": intrinsics[c],
                "sensor2world_transform": transforms[c],
            }
            for c in group_cams
        }
        objects = [] if ground_truth is None else ground_truth.get(frame, [])
        previous = {} if ground_truth is None else {
            (o.object_type, o.object_id): o.location for o in ground_truth.get(frame - 1, [])
        }
        kept = []
        for obj in objects:
            if obj.object_type not in keep:
                stats.dropped_class += 1
            elif not any(c in obj.bbox_visible for c in group_cams):
                stats.dropped_invisible += 1
            else:
                kept.append(obj)
        n = len(kept)
        boxes = np.zeros((n, 7))
        velocity = np.zeros((n, 3))
        for i, obj in enumerate(kept):
            boxes[i, :3] = obj.location - origin
            boxes[i, 3:6] = obj.scale
            boxes[i, 6] = wrap_angle(obj.yaw)
            before = previous.get((obj.object_type, obj.object_id))
            if before is not None:
                v = (obj.location - before) * fps
                speed = float(np.linalg.norm(v))
                stats.max_speed_mps = max(stats.max_speed_mps, speed)
                if speed > max_speed_mps:
                    stats.speed_outliers += 1  # an id switch or a teleport, not motion: no velocity target
                else:
                    velocity[i] = v
        valid = np.linalg.norm(boxes[:, :2], axis=1) <= max_range_m
        stats.invalid_range += int(np.count_nonzero(~valid))
        for obj in kept:
            stats.per_class[obj.object_type] = stats.per_class.get(obj.object_type, 0) + 1
        infos.append({
            "frame_idx": frame,
            "cams": cams,
            "scene_name": scene_name,
            "timestamp": frame / fps,
            "token": token,
            "group_name": group.name,
            "instance_inds": np.array([o.object_id for o in kept], dtype=np.int64),
            "asset_inds": np.array([asset_index[asset_key(scene, o)] for o in kept], dtype=np.int64),
            "gt_boxes": boxes,
            "gt_names": np.array([o.object_type for o in kept], dtype=str) if n else np.zeros(0, dtype="<U1"),
            "gt_velocity": velocity,
            "valid_flag": valid,
            "gt_visibility": [_visibility(o, group_cams) for o in kept],
        })
        stats.boxes += n
    stats.frames = len(infos)
    return infos, stats


def make_metadata(*, split: str, scene: str, group: BevGroup, classes: Sequence[str], fps: float, frame_step: int,
                  image_size: tuple[int, int]) -> dict[str, Any]:
    """The ``metadata`` dict: TAO's keys plus what maps predictions back (origin) and describes the frames."""
    return {
        "version": DATASET_VERSION,
        "split_type": split,
        "schema_version": SCHEMA_VERSION,
        "class_names": list(classes),
        "scene": scene,
        "group": group.to_json(),
        "bev_origin": [float(v) for v in group.origin],
        "source_fps": float(fps),
        "frame_step": int(frame_step),
        "image_size": [int(image_size[0]), int(image_size[1])],
    }


def write_ovpkl(path: str | os.PathLike, metadata: Mapping[str, Any], infos: list[dict[str, Any]]) -> Path:
    """Write one OVPKL file atomically."""
    return safe_pickle.dump(path, {"metadata": dict(metadata), "infos": infos})


def _check_structure(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict) or "metadata" not in data or "infos" not in data:
        raise OvpklError(f"{source}: expected a dict with keys 'metadata' and 'infos'")
    metadata, infos = data["metadata"], data["infos"]
    if not isinstance(metadata, dict):
        raise OvpklError(f"{source}: 'metadata' must be a dict")
    missing = [k for k in METADATA_KEYS[:2] if k not in metadata]
    if missing:
        raise OvpklError(f"{source}: metadata lacks keys {missing}")
    if not isinstance(infos, list):
        raise OvpklError(f"{source}: 'infos' must be a list")
    for i, info in enumerate(infos):
        if not isinstance(info, dict):
            raise OvpklError(f"{source}: infos[{i}] is not a dict")
        lacking = [k for k in ("frame_idx", "cams", "scene_name", "timestamp", "token") if k not in info]
        if lacking:
            raise OvpklError(f"{source}: infos[{i}] lacks keys {lacking}")
        boxes = info.get("gt_boxes")
        if boxes is not None and (not isinstance(boxes, np.ndarray) or boxes.ndim != 2 or boxes.shape[1] < 7):
            raise OvpklError(f"{source}: infos[{i}]['gt_boxes'] must be an (N, 7) array")
        for cam, entry in info["cams"].items():
            if not isinstance(entry, dict) or any(k not in entry for k in ("data_path", "cam_intrinsic",
                                                                          "sensor2world_transform")):
                raise OvpklError(f"{source}: infos[{i}]['cams'][{cam!r}] lacks data_path / cam_intrinsic / "
                                 "sensor2world_transform")
    return data


def load_ovpkl(path: str | os.PathLike) -> dict[str, Any]:
    """Load one OVPKL file through the restricted unpickler and check its structure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: OVPKL file not found (run `dvc repro convert`)")
    return _check_structure(safe_pickle.load(path), str(path))


def load_infos(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Infos of one OVPKL file or of every ``*.pkl`` in a folder, sorted by (scene_name, timestamp), as
    TAO's dataset does, plus each scene_name's metadata."""
    path = Path(path)
    files = sorted(path.glob("*.pkl")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path}: no *.pkl files (run `dvc repro convert`)")
    infos: list[dict[str, Any]] = []
    metadata: dict[str, dict[str, Any]] = {}
    for file in files:
        data = load_ovpkl(file)
        infos.extend(data["infos"])
        for info in data["infos"][:1]:
            metadata[info["scene_name"]] = data["metadata"]
    infos.sort(key=lambda info: (info["scene_name"], info["timestamp"]))
    return infos, metadata
