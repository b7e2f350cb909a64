"""Raw scenes -> what the trainers read: HDF5 frame store, OVPKL per BEV group, KITTI 2D labels, anchors.

:func:`convert_dataset` does the whole conversion of ``<raw_dir>/<split>/<Scene>`` into four folders
(default ``data/frames``, ``data/ovpkl``, ``data/kitti``, ``data/anchors``):

1. *Plan* every scene without decoding anything (:mod:`visionops.data.scene_plan`).
2. *Frames* (:mod:`visionops.data.parallel_frames`): every camera's video is decoded once and written to
   ``<frames>/<Scene>/<camera>.h5``, in ``convert.workers`` processes, one writer per file.
3. *OVPKL*: one pickle per (scene, BEV group), see :mod:`visionops.data.ovpkl`.
4. *KITTI*: one JPEG (the stored bytes) and one label file per (scene, camera, kept frame) of the scenes
   with GT; the parent computes the labels up front and each camera worker writes its samples right
   after its frame store, so this runs in parallel too.
5. *Anchors*: k-means over the training boxes -> ``kmeans<N>.npy``.

All four folders are built in temporary siblings and swapped into place only when everything
succeeded, so a failure (a corrupt video, a full disk, Ctrl-C) leaves the previous outputs untouched and
no half-written h5 or pkl anywhere.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionops import atomic
from visionops.config import ConvertParams
from visionops.data.download import folder_bytes
from visionops.data.parallel_frames import convert_frames
from visionops.data.scene_plan import ConversionError, ScenePlan, find_split_scenes, plan_scene

__all__ = ["CONVERSION_FILE", "ConversionError", "OutputDirs", "ScenePlan", "convert_dataset", "plan_scene"]

CONVERSION_FILE = "conversion.json"



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
        step = kitti.val_frame_step if plan.split == "val" and kitti.val_frame_step else kitti.frame_step
        frames = plan.frame_ids[::step]
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
        sizes_bytes = {name: folder_bytes(path) for name, path in staged.items()}
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

