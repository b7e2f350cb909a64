"""Raw scenes -> what the trainers read: HDF5 frame store, OVPKL per BEV group, KITTI 2D labels, anchors.

:func:`convert_dataset` does the whole conversion of ``<raw_dir>/<split>/<Scene>`` into four folders
(default ``data/frames``, ``data/ovpkl``, ``data/kitti``, ``data/anchors``):

1. *Plan* every scene without decoding anything: cameras, frame rate, frames to keep, BEV groups, and the
   consistency checks whose failure would otherwise surface deep inside training (a video camera missing
   from calibration.json, GT naming an unknown camera, an empty scene).
2. *Frames* (and 4.): every camera's video is decoded once and written to ``<frames>/<Scene>/<camera>.h5``, in
   ``convert.workers`` processes, one writer per file.
3. *OVPKL*: one pickle per (scene, BEV group), see :mod:`visionops.data.ovpkl`.
4. *KITTI*: one JPEG (the stored bytes) and one label file per (scene, camera, kept frame) of the scenes
   with GT; the parent computes the labels up front and each camera worker writes its samples right
   after its frame store, so this runs in parallel too.
5. *Anchors*: k-means over the training boxes -> ``kmeans<N>.npy``.

All four folders are built in temporary siblings and swapped into place only when everything
succeeded, so a failure (a corrupt video, a full disk, Ctrl-C) leaves the previous outputs untouched and
no half-written h5 or pkl anywhere.

Fewer video frames than GT frames: the scene is truncated to the frames every camera has (the GT beyond
them is not used) and a warning says so; cameras of one scene with different lengths are cut to the
shortest the same way.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visionops import atomic
from visionops.config import ConvertParams
from visionops.data.bev_groups import BevGroup, make_groups
from visionops.data.raw import RawScene
from visionops.data.schema import SchemaError

CONVERSION_FILE = "conversion.json"


class ConversionError(RuntimeError):
    """The raw data cannot be converted; the message names the file (and frame/camera) and the fix."""


@dataclass(frozen=True)
class OutputDirs:
    """Where the four outputs go; ``root`` is what the paths inside OVPKL are relative to."""

    frames: Path
    ovpkl: Path
    kitti: Path
    anchors: Path
    root: Path

    @classmethod
    def under(cls, root: str | os.PathLike, data_dir: str = "data") -> OutputDirs:
        root = Path(root)
        base = root / data_dir
        return cls(base / "frames", base / "ovpkl", base / "kitti", base / "anchors", root)

    def reference(self, path: Path) -> str:
        """How a final output path is written into OVPKL: relative to ``root`` when below it."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.resolve().as_posix()


@dataclass
class ScenePlan:
    """What will be converted of one scene (computed without decoding)."""

    split: str
    scene: RawScene
    cameras: list[str]
    source_fps: float
    step: int
    frame_ids: list[int]
    source_size: tuple[int, int]
    stored_size: tuple[int, int]
    depth_cameras: list[str]
    groups: list[BevGroup]
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.scene.name

    @property
    def has_gt(self) -> bool:
        return self.scene.has_ground_truth


# --------------------------------------------------------------------------------------------------
# planning and consistency checks
# --------------------------------------------------------------------------------------------------


def find_split_scenes(raw_dir: Path, splits: list[str]) -> list[tuple[str, RawScene]]:
    """(split, scene) for every ``<raw_dir>/<split>/<Scene>`` of the requested splits, sorted."""
    out = []
    for split in splits:
        folder = raw_dir / split
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                out.append((split, RawScene(child)))
    return out


def _frame_step(source_fps: float, fps: float | None, where: str) -> int:
    if fps is None:
        return 1
    ratio = source_fps / fps
    step = round(ratio)
    if step < 1 or abs(ratio - step) > 1e-3:
        choices = ", ".join(f"{source_fps / k:g}" for k in range(1, 7))
        raise ConversionError(f"{where}: convert.fps={fps:g} does not divide the source rate {source_fps:g} fps; "
                              f"choose one of {choices} (or null for every frame)")
    return step


def check_ground_truth_cameras(scene: RawScene, calibration_ids: set[str]) -> None:
    """Every camera named by a GT 2D box must exist in calibration.json."""
    for frame, objects in scene.ground_truth.items():
        for index, obj in enumerate(objects):
            for key, boxes in (("2d bounding box visible", obj.bbox_visible), ("2d bounding box", obj.bbox_full)):
                for cam in boxes or {}:
                    if cam not in calibration_ids:
                        raise ConversionError(
                            f"{scene.ground_truth_path}: frame {frame}, object #{index} "
                            f"({obj.object_type} {obj.object_id}), key {key!r} names camera {cam!r}, which is "
                            f"not in {scene.calibration_path.name} (cameras: {', '.join(sorted(calibration_ids))}). "
                            "The GT and the calibration come from different dataset revisions: re-download the scene."
                        )


def plan_scene(split: str, scene: RawScene, params: ConvertParams) -> ScenePlan:
    """Check a scene and decide what to convert; raises :class:`ConversionError` naming the file."""
    from visionops.data.video import count_frames, probe  # noqa: PLC0415

    cameras = scene.camera_ids
    if not cameras:
        raise ConversionError(f"{scene.path}: empty scene, no videos/*.mp4; re-run the download stage "
                              "(or remove the folder if the scene is not wanted)")
    try:
        calibration = scene.calibration
    except FileNotFoundError:
        raise ConversionError(f"{scene.calibration_path}: missing; re-run the download stage") from None
    except SchemaError as exc:
        raise ConversionError(str(exc)) from None
    calibration_ids = set(calibration.camera_ids)
    missing = [c for c in cameras if c not in calibration_ids]
    if missing:
        raise ConversionError(
            f"{scene.calibration_path}: no sensor for camera(s) {missing} that have videos in {scene.path / 'videos'}; "
            "the calibration does not match the videos: re-download the scene, or delete the videos of "
            "cameras you do not want converted"
        )
    warnings: list[str] = []
    extra = sorted(calibration_ids - set(cameras))
    if extra:
        warnings.append(f"{scene.name}: calibration cameras without a video are ignored: {extra}")
    if scene.has_ground_truth:
        try:
            check_ground_truth_cameras(scene, calibration_ids)
        except SchemaError as exc:
            raise ConversionError(str(exc)) from None

    infos = {}
    for cam in cameras:
        path = scene.video_path(cam)
        try:
            info = probe(path)
            if info["frames"] is None:
                info["frames"] = count_frames(path, exact=True)
        except Exception as exc:  # noqa: BLE001 - PyAV raises many types for unreadable files
            raise ConversionError(f"{path}: cannot read the video container at frame 0 ({exc}); the file is "
                                  "corrupt or truncated: re-run the download stage") from None
        infos[cam] = info
    sizes = {(i["width"], i["height"]) for i in infos.values()}
    if len(sizes) != 1:
        raise ConversionError(f"{scene.path}: cameras have different frame sizes {sorted(sizes)}; "
                              "convert.resize needs one source size per scene")
    source_size = sizes.pop()
    fps_values = [i["fps"] or calibration.camera(c).fps or 30.0 for c, i in infos.items()]
    source_fps = float(fps_values[0])
    if any(abs(f - source_fps) > 1e-3 for f in fps_values):
        raise ConversionError(f"{scene.path}: cameras have different frame rates {sorted(set(fps_values))}")
    step = _frame_step(source_fps, params.fps, str(scene.path))

    lengths = {cam: int(i["frames"]) for cam, i in infos.items()}
    n_frames = min(lengths.values())
    if n_frames <= 0:
        raise ConversionError(f"{scene.video_path(min(lengths, key=lengths.get))}: video has no frames; "
                              "re-run the download stage")
    if len(set(lengths.values())) > 1:
        warnings.append(f"{scene.name}: cameras have {min(lengths.values())}-{max(lengths.values())} frames; "
                        f"converting the first {n_frames} (the shortest camera)")
    if scene.has_ground_truth and scene.ground_truth:
        gt_frames = max(scene.ground_truth) + 1
        if gt_frames > n_frames:
            warnings.append(f"{scene.name}: the videos have {n_frames} frames but the GT annotates {gt_frames}; "
                            f"truncating to the first {n_frames} frames (GT beyond them is not used)")
    if params.max_frames is not None:
        n_frames = min(n_frames, params.max_frames)
    frame_ids = list(range(0, n_frames, step))

    stored_size = tuple(params.resize) if params.resize else source_size
    depth_cameras = []
    if params.depth and scene.has_depth:
        depth_cameras = [c for c in cameras if scene.depth_path(c).is_file()]
        lacking = sorted(set(cameras) - set(depth_cameras))
        if lacking:
            warnings.append(f"{scene.name}: no depth file for {lacking}; their frame stores have no depth")

    group = params.bev_groups
    try:
        groups = make_groups(calibration, cameras, mode=group.mode, max_cameras=group.max_cameras,
                             num_groups=group.num_groups, group_size=tuple(group.group_size), seed=group.seed,
                             dilation_m=group.dilation_m, max_range_m=group.max_range_m)
    except (KeyError, ValueError) as exc:
        raise ConversionError(f"{scene.calibration_path}: cannot form BEV groups: {exc}") from None
    return ScenePlan(split, scene, cameras, source_fps, step, frame_ids, source_size, stored_size, depth_cameras,
                     groups, warnings)


# --------------------------------------------------------------------------------------------------
# frames (parallel over cameras)
# --------------------------------------------------------------------------------------------------

_PROGRESS_QUEUE = None


def _init_worker(progress_queue) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue


def _camera_task(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Convert one camera (runs in a worker); errors come back as text so any exception type survives."""

    def report(n: int) -> None:
        if _PROGRESS_QUEUE is not None:
            _PROGRESS_QUEUE.put(n)

    try:
        return {"ok": True, "stats": _convert_one_camera(kwargs, report)}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        return {"ok": False, "error": str(exc), "type": type(exc).__name__}


def _convert_one_camera(task: dict[str, Any], progress: Callable[[int], None] | None) -> dict[str, Any]:
    """Frame store of one camera, then its KITTI images (the JPEG bytes just stored) with the labels the
    parent computed. Returns the camera's stats as a dict."""
    from visionops.data.camera_conversion import convert_camera  # noqa: PLC0415
    from visionops.data.frame_store import FrameStore  # noqa: PLC0415
    from visionops.data.kitti import write_sample_text  # noqa: PLC0415

    kwargs = {k: v for k, v in task.items() if k != "kitti"}
    stats = asdict(convert_camera(progress=progress, **kwargs))
    kitti = task.get("kitti")
    if kitti and stats.get("truncated_at") is None:
        started = time.perf_counter()
        with FrameStore(task["out_path"]) as store:
            for stem, frame, text in kitti["samples"]:
                write_sample_text(kitti["split_dir"], stem, store.jpeg(frame), text)
        stats["kitti_seconds"] = time.perf_counter() - started
    return stats


def _frame_tasks(plans: list[ScenePlan], frames_dir: Path, kitti_dir: Path | None,
                 kitti_samples: dict[tuple[str, str], list[tuple[str, int, str]]]) -> list[dict[str, Any]]:
    tasks = []
    for plan in plans:
        for cam in plan.cameras:
            samples = kitti_samples.get((plan.name, cam))
            tasks.append({
                "video_path": str(plan.scene.video_path(cam)),
                "out_path": str(frames_dir / plan.name / f"{cam}.h5"),
                "depth_path": str(plan.scene.depth_path(cam)) if cam in plan.depth_cameras else None,
                "frame_ids": plan.frame_ids,
                "size": plan.stored_size if plan.stored_size != plan.source_size else None,
                "scene": plan.name,
                "camera_id": cam,
                "jpeg_quality": None,  # filled by convert_frames
                "kitti": None if samples is None or kitti_dir is None
                else {"split_dir": str(kitti_dir / plan.split), "samples": samples},
            })
    return tasks


def convert_frames(plans: list[ScenePlan], frames_dir: Path, params: ConvertParams,
                   progress: Callable[[int], None] | None = None, *, kitti_dir: Path | None = None,
                   kitti_samples: dict[tuple[str, str], list[tuple[str, int, str]]] | None = None,
                   ) -> list[dict[str, Any]]:
    """Write every camera's frame store (and its KITTI samples); returns the per-camera stats dicts.

    ``kitti_samples``: (scene, camera) -> [(file stem, frame, label text)], from :func:`kitti_samples`.
    Raises ConversionError.
    """
    tasks = _frame_tasks(plans, frames_dir, kitti_dir, kitti_samples or {})
    for task in tasks:
        task["jpeg_quality"] = params.jpeg_quality
    results: list[dict[str, Any]] = []
    if params.workers == 1 or len(tasks) == 1:
        for task in tasks:
            try:
                results.append(_convert_one_camera(task, progress))
            except Exception as exc:
                raise ConversionError(f"{task['video_path']} -> {task['out_path']}: {exc}") from exc
        return _check_frame_results(tasks, results)
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    executor = ProcessPoolExecutor(max_workers=min(params.workers, len(tasks)), mp_context=context,
                                   initializer=_init_worker, initargs=(progress_queue,))
    futures = {executor.submit(_camera_task, task): i for i, task in enumerate(tasks)}
    by_index: dict[int, dict[str, Any]] = {}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            _drain(progress_queue, progress)
            for future in done:
                result = future.result()
                task = tasks[futures[future]]
                if not result["ok"]:
                    raise ConversionError(f"{task['video_path']} -> {task['out_path']}: {result['error']}")
                by_index[futures[future]] = result["stats"]
        _drain(progress_queue, progress)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        progress_queue.close()
    results = [by_index[i] for i in range(len(tasks))]
    return _check_frame_results(tasks, results)


def _drain(progress_queue, progress: Callable[[int], None] | None) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            n = progress_queue.get_nowait()
            if progress is not None:
                progress(n)


def _check_frame_results(tasks: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for task, stats in zip(tasks, results, strict=True):
        if stats.get("truncated_at") is not None:
            raise ConversionError(
                f"{task['video_path']}: ends at frame {stats['truncated_at']} although probing it while planning "
                "found more frames; the file changed during the conversion or is damaged: re-run the download stage"
            )
    return results


# --------------------------------------------------------------------------------------------------
# OVPKL, KITTI, anchors
# --------------------------------------------------------------------------------------------------


def build_asset_index(plans: list[ScenePlan]) -> dict[str, int]:
    """Dataset-wide object index (``asset_inds``): sorted asset keys -> 0..K-1."""
    from visionops.data.ovpkl import asset_key  # noqa: PLC0415

    keys = set()
    for plan in plans:
        if plan.has_gt:
            for objects in plan.scene.ground_truth.values():
                keys.update(asset_key(plan.name, obj) for obj in objects)
    return {key: i for i, key in enumerate(sorted(keys))}


def write_ovpkl_files(plans: list[ScenePlan], dirs: OutputDirs, staged_ovpkl: Path, params: ConvertParams,
                      asset_index: dict[str, int]) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """One OVPKL per (scene, group) into ``staged_ovpkl/<split>/``; returns file summaries and the train
    boxes' centres (M, 3) and sizes (M, 3) for the anchors."""
    from visionops.data.ovpkl import (  # noqa: PLC0415
        CameraSource,
        build_infos,
        make_metadata,
        ovpkl_filename,
        scale_intrinsic,
        write_ovpkl,
    )

    summaries = []
    centres, sizes = [], []
    for plan in plans:
        calibration = plan.scene.calibration
        cameras = {}
        for cam in plan.cameras:
            sensor = calibration.camera(cam)
            cameras[cam] = CameraSource(
                camera_id=cam,
                store_path=dirs.reference(dirs.frames / plan.name / f"{cam}.h5"),
                intrinsic=scale_intrinsic(sensor.intrinsic, plan.source_size, plan.stored_size),
                world_to_camera=sensor.world_to_camera,
            )
        gt = plan.scene.ground_truth if plan.has_gt else None
        for group in plan.groups:
            infos, stats = build_infos(
                scene=plan.name, group=group, cameras=cameras, frame_ids=plan.frame_ids, ground_truth=gt,
                fps=plan.source_fps, classes=params.classes, asset_index=asset_index,
                max_range_m=params.bev_groups.max_range_m, max_speed_mps=params.max_speed_mps,
            )
            metadata = make_metadata(split=plan.split, scene=plan.name, group=group, classes=params.classes,
                                     fps=plan.source_fps, frame_step=plan.step, image_size=plan.stored_size)
            name = ovpkl_filename(plan.name, group.name, plan.split)
            write_ovpkl(staged_ovpkl / plan.split / name, metadata, infos)
            if plan.split == "train" and gt is not None:
                for info in infos:
                    valid = info["valid_flag"]
                    centres.append(info["gt_boxes"][valid, :3])
                    sizes.append(info["gt_boxes"][valid, 3:6])
            summary = {"split": plan.split, "scene": plan.name, "group": group.name, "file": f"{plan.split}/{name}",
                       "cameras": list(group.cameras), "origin": list(group.origin), **asdict(stats)}
            if stats.speed_outliers:
                plan.warnings.append(f"{plan.name}+{group.name}: {stats.speed_outliers} GT boxes move faster than "
                                     f"convert.max_speed_mps={params.max_speed_mps:g} m/s (max "
                                     f"{stats.max_speed_mps:.1f}); their velocity target is set to 0")
            summaries.append(summary)
    if not centres:
        return summaries, np.zeros((0, 3)), np.zeros((0, 3))
    return summaries, np.concatenate(centres), np.concatenate(sizes)


def kitti_samples(plans: list[ScenePlan], params: ConvertParams
                  ) -> tuple[dict[tuple[str, str], list[tuple[str, int, str]]], dict[str, Any]]:
    """KITTI label texts of every scene with GT: (scene, camera) -> [(stem, frame, text)], and counts per split.

    Labels need only the GT and the calibration, so the parent computes them and the camera workers write
    them next to the JPEG bytes they have just stored.
    """
    from visionops.data.kitti import label_objects, label_text, sample_stem  # noqa: PLC0415

    kitti = params.kitti
    samples: dict[tuple[str, str], list[tuple[str, int, str]]] = {}
    counts: dict[str, Any] = {}
    for plan in plans:
        if not plan.has_gt:
            continue
        split_counts = counts.setdefault(plan.split, {"images": 0, "objects": 0, "too_small": 0, "per_class": {}})
        frames = plan.frame_ids[:: kitti.frame_step]
        scale = (plan.stored_size[0] / plan.source_size[0], plan.stored_size[1] / plan.source_size[1])
        for cam in plan.cameras:
            sensor = plan.scene.calibration.camera(cam)
            entries = samples.setdefault((plan.name, cam), [])
            for frame in frames:
                labels, too_small = label_objects(
                    plan.scene.ground_truth.get(frame, []), sensor, class_names=kitti.class_names, scale=scale,
                    min_width=kitti.min_width, min_height=kitti.min_height,
                )
                entries.append((sample_stem(plan.name, cam, frame), frame, label_text(labels)))
                split_counts["images"] += 1
                split_counts["objects"] += len(labels)
                split_counts["too_small"] += too_small
                for label in labels:
                    split_counts["per_class"][label.name] = split_counts["per_class"].get(label.name, 0) + 1
    return samples, counts


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def convert_dataset(raw_dir: str | os.PathLike, dirs: OutputDirs, params: ConvertParams, num_anchor: int, *,
                    echo: Callable[[str], None] = print, show_progress: bool = True) -> dict[str, Any]:
    """Convert every scene of ``params.splits`` under ``raw_dir`` into ``dirs``; returns the report.

    The report has the deterministic ``conversion.json`` content (scenes, groups, files, counts, warnings)
    under ``"summary"`` and the timings/throughput under ``"timing"``.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from visionops.data.anchors import kmeans_anchors, write_anchors  # noqa: PLC0415

    raw_dir = Path(raw_dir)
    started = time.perf_counter()
    found = find_split_scenes(raw_dir, list(params.splits))
    if not found:
        raise ConversionError(f"{raw_dir}: no scenes under {raw_dir}/{{{','.join(params.splits)}}}/; "
                              "run the download stage first (`dvc repro download`)")
    plans = [plan_scene(split, scene, params) for split, scene in found]
    for plan in plans:
        for warning in plan.warnings:
            echo(f"warning: {warning}")
    planned = time.perf_counter()

    for folder in (dirs.frames, dirs.ovpkl, dirs.kitti, dirs.anchors):
        atomic.remove_stale_temporaries(folder.parent)
    timing: dict[str, float] = {"plan_seconds": planned - started}
    with contextlib.ExitStack() as stack:
        staged = {name: stack.enter_context(atomic.atomic_dir(getattr(dirs, name)))
                  for name in ("anchors", "kitti", "ovpkl", "frames")}
        total_frames = sum(len(p.frame_ids) * len(p.cameras) for p in plans)
        samples, kitti_counts = kitti_samples(plans, params)
        labelled = time.perf_counter()
        timing["kitti_labels_seconds"] = labelled - planned
        with tqdm(total=total_frames, unit="frame", desc="convert frames", disable=not show_progress,
                  mininterval=1.0) as bar:
            camera_stats = convert_frames(plans, staged["frames"], params, progress=bar.update,
                                          kitti_dir=staged["kitti"], kitti_samples=samples)
        frames_done = time.perf_counter()
        timing["frames_seconds"] = frames_done - labelled

        asset_index = build_asset_index(plans)
        atomic.write_json(staged["ovpkl"] / "object_ids.json", asset_index)
        ovpkl_files, centres, sizes = write_ovpkl_files(plans, dirs, staged["ovpkl"], params, asset_index)
        ovpkl_done = time.perf_counter()
        timing["ovpkl_seconds"] = ovpkl_done - frames_done

        anchor_report = None
        if len(centres):
            anchors, anchor_report = kmeans_anchors(centres, sizes, num_anchor, seed=params.anchors.seed,
                                                    max_points=params.anchors.max_points)
            write_anchors(staged["anchors"], anchors)
        else:
            echo("warning: no training boxes (no train split with GT): no anchors written")
        timing["anchors_seconds"] = time.perf_counter() - ovpkl_done

        summary = {
            "scenes": [
                {"split": p.split, "name": p.name, "cameras": p.cameras, "source_fps": p.source_fps,
                 "frame_step": p.step, "frames": len(p.frame_ids), "source_size": list(p.source_size),
                 "stored_size": list(p.stored_size), "depth_cameras": p.depth_cameras, "has_gt": p.has_gt,
                 "groups": [g.to_json() for g in p.groups], "warnings": p.warnings}
                for p in plans
            ],
            "ovpkl": ovpkl_files,
            "kitti": kitti_counts,
            "anchors": anchor_report,
            "objects": len(asset_index),
        }
        atomic.write_json(staged["ovpkl"] / CONVERSION_FILE, summary)
        sizes_bytes = {name: _folder_bytes(path) for name, path in staged.items()}
    elapsed = time.perf_counter() - started
    decode = sum(s["decode_seconds"] for s in camera_stats)
    encode = sum(s["encode_seconds"] for s in camera_stats)
    timing.update({
        "total_seconds": elapsed,
        "camera_frames": total_frames,
        "frames_per_second": total_frames / timing["frames_seconds"] if timing["frames_seconds"] > 0 else math.inf,
        "decode_seconds_cpu": decode,
        "encode_seconds_cpu": encode,
        "resize_seconds_cpu": sum(s["resize_seconds"] for s in camera_stats),
        "write_seconds_cpu": sum(s["write_seconds"] for s in camera_stats),
        "depth_seconds_cpu": sum(s["depth_seconds"] for s in camera_stats),
        "kitti_write_seconds_cpu": sum(s.get("kitti_seconds", 0.0) for s in camera_stats),
    })
    return {"summary": summary, "timing": timing, "bytes": sizes_bytes, "cameras": camera_stats}

