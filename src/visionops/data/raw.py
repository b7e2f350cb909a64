"""Reader and writer for one raw MTMC 2025 scene folder.

Layout (``<split>/<Scene>/``)::

    videos/<cam>.mp4          H.264, one per camera; the camera id is the file stem
    depth_maps/<cam>.h5       optional; datasets distance_to_image_plane_%05d.png (uint16 mm)
    calibration.json          all sensors of the scene
    ground_truth.json         train/val only
    map.png                   top-down floor map

Camera ids are whatever the file stems are (``Camera``, ``Camera_01``, ``Camera_0000``...): never parse
numbers out of them, sort them as strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from visionops import atomic
from visionops.data.calibration import Calibration
from visionops.data.depth import read_depth_mm
from visionops.data.schema import (
    GroundTruth,
    SchemaError,
    ground_truth_from_json,
    ground_truth_to_json,
)

SPLITS = ("train", "val", "test")
VIDEO_DIR, DEPTH_DIR = "videos", "depth_maps"
CALIBRATION_FILE, GROUND_TRUTH_FILE, MAP_FILE = "calibration.json", "ground_truth.json", "map.png"


def load_json(path: Path) -> object:
    """Load a JSON file; errors name the file and the position of the syntax error."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: not UTF-8 text ({exc.reason})") from exc


class RawScene:
    """Read access to a scene folder. Parsing is lazy and cached."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"scene folder {self.path} does not exist")

    @property
    def name(self) -> str:
        return self.path.name

    def __repr__(self) -> str:
        return f"RawScene({str(self.path)!r})"

    # -- files -------------------------------------------------------------------------------------
    @property
    def calibration_path(self) -> Path:
        return self.path / CALIBRATION_FILE

    @property
    def ground_truth_path(self) -> Path:
        return self.path / GROUND_TRUTH_FILE

    @property
    def map_path(self) -> Path:
        return self.path / MAP_FILE

    def video_path(self, camera_id: str) -> Path:
        return self.path / VIDEO_DIR / f"{camera_id}.mp4"

    def depth_path(self, camera_id: str) -> Path:
        return self.path / DEPTH_DIR / f"{camera_id}.h5"

    @cached_property
    def camera_ids(self) -> list[str]:
        """Camera ids = stems of ``videos/*.mp4``, sorted as strings."""
        folder = self.path / VIDEO_DIR
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.mp4"))

    @property
    def has_depth(self) -> bool:
        return (self.path / DEPTH_DIR).is_dir()

    @property
    def has_ground_truth(self) -> bool:
        return self.ground_truth_path.is_file()

    # -- parsed content ----------------------------------------------------------------------------
    @cached_property
    def calibration(self) -> Calibration:
        return Calibration.from_json(load_json(self.calibration_path), str(self.calibration_path))

    @cached_property
    def ground_truth(self) -> GroundTruth:
        return ground_truth_from_json(load_json(self.ground_truth_path), str(self.ground_truth_path))

    def frames(self, camera_id: str, **kwargs) -> Iterator[tuple[int, np.ndarray]]:
        """Decoded ``(frame, rgb (H, W, 3) uint8)`` of one camera; kwargs as :func:`video.iter_frames`."""
        from visionops.data.video import iter_frames  # noqa: PLC0415

        return iter_frames(self.video_path(camera_id), **kwargs)

    def depth_m(self, camera_id: str, frame: int) -> np.ndarray:
        """(H, W) float32 z-depth in metres (0 = no measurement)."""
        return read_depth_mm(self.depth_path(camera_id), frame).astype(np.float32) / 1000.0


def write_calibration(scene_dir: str | os.PathLike, calibration: Calibration) -> Path:
    return atomic.write_json(Path(scene_dir) / CALIBRATION_FILE, calibration.to_json(), indent=2)


def write_ground_truth(scene_dir: str | os.PathLike, ground_truth: GroundTruth) -> Path:
    # No indentation: real GT files are large and single-line.
    return atomic.write_json(Path(scene_dir) / GROUND_TRUTH_FILE, ground_truth_to_json(ground_truth), indent=None)


def write_map(scene_dir: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write ``map.png`` from an (H, W, 3) uint8 image."""
    from PIL import Image  # noqa: PLC0415

    with atomic.atomic_path(Path(scene_dir) / MAP_FILE) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return Path(scene_dir) / MAP_FILE


def find_scenes(root: str | os.PathLike) -> list[Path]:
    """Scene folders under ``root``: ``root`` itself if it is a scene, else ``<root>/[<split>/]<Scene>``."""
    root = Path(root)
    if (root / CALIBRATION_FILE).is_file() or (root / VIDEO_DIR).is_dir():
        return [root]
    found = []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.name.startswith("."):
            continue
        if (child / CALIBRATION_FILE).is_file() or (child / VIDEO_DIR).is_dir():
            found.append(child)
        elif child.is_dir():
            found.extend(
                g for g in sorted(child.iterdir())
                if not g.name.startswith(".") and ((g / CALIBRATION_FILE).is_file() or (g / VIDEO_DIR).is_dir())
            )
    return found
