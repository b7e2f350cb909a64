"""Builders of small, fully consistent raw scenes for tests, written with the project's own writers.

They do not use the synthetic renderer, so the format/validator tests do not depend on it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from visionops.data.calibration import Calibration, CameraCalibration
from visionops.data.depth import DepthWriter, metres_to_mm
from visionops.data.raw import DEPTH_DIR, VIDEO_DIR, write_calibration, write_ground_truth, write_map
from visionops.data.schema import ObjectAnnotation, box_corners
from visionops.data.video import VideoWriter


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 4) world->camera [R|t] in OpenCV axes (x right, y down, z forward) looking at ``target``."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    return np.concatenate([rot, (-rot @ position)[:, None]], axis=1)


def make_camera(cam_id: str, position, target, width: int, height: int, fps: float = 30.0) -> CameraCalibration:
    focal = 0.8 * width
    k = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    return CameraCalibration.from_pose(
        cam_id, k, look_at(np.asarray(position, float), np.asarray(target, float)), width=width, height=height,
        fps=fps, scale_factor=10.0, translation_to_global=np.array([5.0, 5.0]),
    )


def full_box(cam: CameraCalibration, obj: ObjectAnnotation) -> np.ndarray:
    uv, _ = cam.project(box_corners(obj.location, obj.scale, obj.rotation))
    x0, y0 = np.clip(uv.min(0), 0, [cam.width, cam.height])
    x1, y1 = np.clip(uv.max(0), 0, [cam.width, cam.height])
    return np.array([x0, y0, x1, y1])


def make_scene(
    scene_dir: Path,
    *,
    cameras: tuple[str, ...] = ("Camera_0000", "Camera_0001"),
    frames: int = 4,
    width: int = 64,
    height: int = 48,
    depth: bool = True,
    with_gt: bool = True,
) -> Path:
    """A tiny consistent scene: cameras on a circle at 4 m looking at the origin, one moving Person."""
    scene_dir = Path(scene_dir)
    (scene_dir / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    sensors = []
    for i, cam_id in enumerate(cameras):
        angle = 2 * math.pi * i / len(cameras)
        sensors.append(make_camera(cam_id, [6 * math.cos(angle), 6 * math.sin(angle), 4.0], [0, 0, 0], width, height))
    write_calibration(scene_dir, Calibration(sensors=sensors))
    gt = {}
    for f in range(frames):
        obj = ObjectAnnotation("Person", 1, np.array([0.1 * f, 0.0, 0.875]), np.array([0.6, 0.5, 1.75]),
                               np.array([0.0, 0.0, 0.3]))
        obj.bbox_full = {c.id: full_box(c, obj) for c in sensors}
        obj.bbox_visible = {c.id: full_box(c, obj) for c in sensors}
        gt[f] = [obj]
    if with_gt:
        write_ground_truth(scene_dir, gt)
    rng = np.random.default_rng(0)
    if depth:
        (scene_dir / DEPTH_DIR).mkdir(exist_ok=True)
    for cam in sensors:
        with VideoWriter(scene_dir / VIDEO_DIR / f"{cam.id}.mp4", width, height, 30.0) as writer:
            for _ in range(frames):
                writer.write(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        if depth:
            with DepthWriter(scene_dir / DEPTH_DIR / f"{cam.id}.h5") as depth_writer:
                for f in range(frames):
                    depth_writer.write(f, metres_to_mm(np.full((height, width), 5.0)))
    write_map(scene_dir, np.full((150, 200, 3), 200, dtype=np.uint8))
    return scene_dir
