"""Frame stores (and KITTI samples) of many cameras in parallel: one spawned worker per camera task, one
h5 writer per file, progress reported back through a queue."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

from visionops.config import ConvertParams
from visionops.data.scene_plan import ConversionError, ScenePlan

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


