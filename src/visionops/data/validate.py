"""Consistency checks of raw MTMC 2025 scene folders (``visionops data validate``).

Every problem is reported with the file, the JSON key or dataset, and the frame where it applies,
so a user can fix the data instead of debugging a stack trace three stages later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visionops.data.calibration import Calibration
from visionops.data.raw import (
    CALIBRATION_FILE,
    DEPTH_DIR,
    GROUND_TRUTH_FILE,
    VIDEO_DIR,
    RawScene,
)
from visionops.data.schema import GroundTruth, SchemaError

MATRIX_RTOL = 1e-4  # cameraMatrix vs K @ E: JSON round-off is ~1e-9, real inconsistencies are >> 1e-3
BOX_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class Finding:
    """One problem. ``severity`` is ``error`` (the scene is unusable as is) or ``warning``."""

    severity: str
    file: str
    message: str
    key: str | None = None
    frame: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.key:
            where += f" [{self.key}]"
        if self.frame is not None:
            where += f" frame {self.frame}"
        return f"{self.severity.upper()}: {where}: {self.message}"


@dataclass
class ValidationReport:
    scene: Path
    findings: list[Finding] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    frames: int | None = None
    gt_frames: int = 0
    gt_objects: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, file: Path | str, message: str, key: str | None = None, frame: int | None = None) -> None:
        self.findings.append(Finding("error", str(file), message, key, frame))

    def warn(self, file: Path | str, message: str, key: str | None = None, frame: int | None = None) -> None:
        self.findings.append(Finding("warning", str(file), message, key, frame))

    def to_dict(self) -> dict:
        return {
            "scene": str(self.scene),
            "ok": self.ok,
            "cameras": self.cameras,
            "frames": self.frames,
            "gt_frames": self.gt_frames,
            "gt_objects": self.gt_objects,
            "errors": [str(f) for f in self.errors],
            "warnings": [str(f) for f in self.warnings],
        }


def validate_scene(path: str | os.PathLike, *, decode: bool = False, require_gt: bool = False,
                   max_findings: int = 200) -> ValidationReport:
    """Check one scene folder.

    Args:
        path: the scene folder.
        decode: decode every video frame (catches corrupt streams; slow) instead of trusting headers.
        require_gt: a missing ``ground_truth.json`` is an error (train/val) instead of a note (test).
        max_findings: stop collecting after this many, so a broken GT file does not print 1e6 lines.
    """
    report = ValidationReport(scene=Path(path))
    try:
        scene = RawScene(path)
    except FileNotFoundError as exc:
        report.error(path, str(exc))
        return report

    calibration = _check_calibration(scene, report)
    report.cameras = scene.camera_ids
    if not scene.camera_ids:
        report.error(scene.path / VIDEO_DIR, "no videos/<camera>.mp4 files")
    frame_counts, sizes = _check_videos(scene, report, decode)
    if calibration is not None:
        _check_camera_sets(scene, calibration, report)
        _check_video_sizes(scene, calibration, sizes, report)
    if frame_counts:
        counts = set(frame_counts.values())
        if len(counts) > 1:
            detail = ", ".join(f"{c}: {n}" for c, n in sorted(frame_counts.items()))
            report.error(scene.path / VIDEO_DIR, f"cameras have different frame counts ({detail})")
        report.frames = min(counts)
    if scene.has_depth:
        _check_depth(scene, frame_counts, sizes, report)
    if scene.has_ground_truth:
        gt = _load_gt(scene, report)
        if gt is not None:
            _check_ground_truth(scene, gt, calibration, report.frames, sizes, report)
    elif require_gt:
        report.error(scene.ground_truth_path, "missing (train/val scenes need ground truth)")
    if not scene.map_path.is_file():
        report.warn(scene.map_path, "missing map.png")
    else:
        _check_png(scene.map_path, report)
    del report.findings[max_findings:]
    return report


# -- calibration ---------------------------------------------------------------------------------


def _check_calibration(scene: RawScene, report: ValidationReport) -> Calibration | None:
    path = scene.calibration_path
    if not path.is_file():
        report.error(path, f"missing {CALIBRATION_FILE}")
        return None
    try:
        calibration = scene.calibration
    except SchemaError as exc:
        report.error(path, str(exc).removeprefix(f"{path}: "))
        return None
    for cam in calibration.sensors:
        key = f"sensors[id={cam.id}]"
        expected = cam.intrinsic @ cam.extrinsic
        scale = max(np.abs(expected).max(), 1e-9)
        if np.abs(expected - cam.camera_matrix).max() > MATRIX_RTOL * scale:
            report.error(path, "cameraMatrix != intrinsicMatrix @ extrinsicMatrix "
                         f"(max difference {np.abs(expected - cam.camera_matrix).max():.4g})", f"{key}.cameraMatrix")
        rot = cam.extrinsic[:, :3]
        if np.abs(rot @ rot.T - np.eye(3)).max() > 1e-4 or np.linalg.det(rot) < 0:
            report.error(path, "extrinsicMatrix rotation is not a proper rotation (R R^T != I or det < 0)",
                         f"{key}.extrinsicMatrix")
        homography = cam.camera_matrix[:, [0, 1, 3]]
        if abs(homography[2, 2]) > 1e-12 and abs(cam.homography[2, 2]) > 1e-12:
            h_expected = homography / homography[2, 2]
            h_given = cam.homography / cam.homography[2, 2]
            if np.abs(h_expected - h_given).max() > 1e-3 * max(np.abs(h_expected).max(), 1.0):
                report.warn(path, "homography differs from cameraMatrix columns (0, 1, 3)", f"{key}.homography")
        k = cam.intrinsic
        if k[0, 0] <= 0 or k[1, 1] <= 0 or abs(k[2, 2] - 1) > 1e-6:
            report.error(path, "intrinsicMatrix must have fx, fy > 0 and K[2][2] = 1", f"{key}.intrinsicMatrix")
    return calibration


def _check_camera_sets(scene: RawScene, calibration: Calibration, report: ValidationReport) -> None:
    videos, calibrated = set(scene.camera_ids), set(calibration.camera_ids)
    for cam in sorted(videos - calibrated):
        report.error(scene.calibration_path, f"camera {cam!r} has a video but no calibration entry",
                     f"sensors[id={cam}]")
    for cam in sorted(calibrated - videos):
        report.error(scene.video_path(cam), f"calibrated camera {cam!r} has no video")


def _check_video_sizes(scene: RawScene, calibration: Calibration, sizes: dict[str, tuple[int, int]],
                       report: ValidationReport) -> None:
    for cam, (width, height) in sorted(sizes.items()):
        try:
            sensor = calibration.camera(cam)
        except KeyError:
            continue
        if sensor.width is not None and sensor.height is not None and (sensor.width, sensor.height) != (width, height):
            report.error(scene.calibration_path,
                         f"frameWidth x frameHeight = {sensor.width}x{sensor.height} but the video is {width}x{height}",
                         f"sensors[id={cam}].attributes")


# -- videos and depth ----------------------------------------------------------------------------


def _check_videos(scene: RawScene, report: ValidationReport, decode: bool
                  ) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    from visionops.data import video  # noqa: PLC0415

    counts: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for cam in scene.camera_ids:
        path = scene.video_path(cam)
        try:
            info = video.probe(path)
            sizes[cam] = (info["width"], info["height"])
            if decode:
                counts[cam] = sum(1 for _ in video.iter_frames(path))
            else:
                counts[cam] = video.count_frames(path)
        except Exception as exc:  # noqa: BLE001 - FFmpeg raises many types for a corrupt file
            report.error(path, f"cannot read the video ({type(exc).__name__}: {exc}); re-download or re-encode it")
            continue
        if counts[cam] == 0:
            report.error(path, "video has no frames")
    return counts, sizes


def _check_depth(scene: RawScene, frame_counts: dict[str, int], sizes: dict[str, tuple[int, int]],
                 report: ValidationReport) -> None:
    import h5py  # noqa: PLC0415

    from visionops.data.depth import depth_key, list_depth_frames  # noqa: PLC0415

    depth_cams = sorted(p.stem for p in (scene.path / DEPTH_DIR).glob("*.h5"))
    for cam in sorted(set(depth_cams) - set(scene.camera_ids)):
        report.warn(scene.depth_path(cam), f"depth for camera {cam!r} that has no video")
    for cam in scene.camera_ids:
        path = scene.depth_path(cam)
        if not path.is_file():
            report.error(path, f"depth_maps/ exists but camera {cam!r} has no depth file")
            continue
        try:
            frames = list_depth_frames(path)
            with h5py.File(path, "r") as handle:
                group = handle.get("distance_to_image_plane_png", handle)
                if frames:
                    first = group[depth_key(frames[0])]
                    if first.dtype != np.uint16 or first.ndim != 2:
                        report.error(path, f"depth must be 2D uint16 millimetres, got {first.dtype} {first.shape}",
                                     depth_key(frames[0]))
                    elif cam in sizes and first.shape != (sizes[cam][1], sizes[cam][0]):
                        report.error(path, f"depth is {first.shape[1]}x{first.shape[0]} but the video is "
                                     f"{sizes[cam][0]}x{sizes[cam][1]}", depth_key(frames[0]))
        except (OSError, KeyError) as exc:
            report.error(path, f"cannot read the HDF5 file ({exc})")
            continue
        expected = frame_counts.get(cam)
        if expected is not None:
            missing = sorted(set(range(expected)) - set(frames))
            if missing:
                report.error(path, f"{len(missing)} of {expected} frames have no depth map "
                             f"(first missing: {depth_key(missing[0])})", frame=missing[0])


# -- ground truth --------------------------------------------------------------------------------


def _load_gt(scene: RawScene, report: ValidationReport) -> GroundTruth | None:
    try:
        return scene.ground_truth
    except SchemaError as exc:
        report.error(scene.ground_truth_path, str(exc).removeprefix(f"{scene.ground_truth_path}: "))
        return None


def _check_ground_truth(scene: RawScene, gt: GroundTruth, calibration: Calibration | None, n_frames: int | None,
                        sizes: dict[str, tuple[int, int]], report: ValidationReport) -> None:
    path = scene.path / GROUND_TRUTH_FILE
    known = set(scene.camera_ids) | (set(calibration.camera_ids) if calibration else set())
    report.gt_frames = len(gt)
    report.gt_objects = sum(len(v) for v in gt.values())
    unknown_reported: set[str] = set()
    for frame, objects in gt.items():
        if n_frames is not None and frame >= n_frames:
            report.error(path, f"ground truth for frame {frame} but the videos have {n_frames} frames",
                         f'"{frame}"', frame)
            continue
        for obj in objects:
            track = f"{obj.object_type} {obj.object_id}"
            for key, boxes in (("2d bounding box visible", obj.bbox_visible), ("2d bounding box", obj.bbox_full)):
                for cam, box in (boxes or {}).items():
                    if cam not in known:
                        if cam not in unknown_reported:
                            report.error(path, f"object {track} has a box for camera {cam!r}, which has no video "
                                         "or calibration", f"{key}.{cam}", frame)
                            unknown_reported.add(cam)
                        continue
                    if cam in sizes:
                        width, height = sizes[cam]
                        if (box[0] < -BOX_TOLERANCE_PX or box[1] < -BOX_TOLERANCE_PX
                                or box[2] > width + BOX_TOLERANCE_PX or box[3] > height + BOX_TOLERANCE_PX):
                            report.error(path, f"object {track}: box {np.round(box, 1).tolist()} lies outside the "
                                         f"{width}x{height} image", f"{key}.{cam}", frame)
            if obj.bbox_full:
                for cam, vis in obj.bbox_visible.items():
                    full = obj.bbox_full.get(cam)
                    if full is not None and (vis[:2] < full[:2] - 2).any() | (vis[2:] > full[2:] + 2).any():
                        report.warn(path, f"object {track}: visible box exceeds the full box",
                                    f"2d bounding box visible.{cam}", frame)
            if len(report.findings) > 500:
                return


def _check_png(path: Path, report: ValidationReport) -> None:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        report.error(path, f"not a readable PNG ({exc})")
