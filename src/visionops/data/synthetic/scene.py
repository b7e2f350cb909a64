"""Orchestration: build a scene from the parameters, render its cameras in parallel, write the raw files.

A scene is fully determined by ``(params.seed, split, scene index)``: each part (layout, lighting,
cameras, objects, motion, textures, sensor noise) draws from its own seed stream, so changing the number
of cameras does not move the racks, and adding a split does not change the others' scenes.

Parameters are duck-typed (``visionops.config.SyntheticParams`` or any object with its fields): ``seed``,
``scenes`` ({split: count}), ``cameras``, ``frames``, ``fps``, ``width``, ``height``, ``floor_size``,
``classes``, ``objects_per_scene`` (min, max), ``depth``, ``camera_naming``, ``crf``,
``min_visible_pixels``, ``workers``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionops import atomic
from visionops.data.calibration import Calibration, CameraCalibration
from visionops.data.raw import DEPTH_DIR, SPLITS, VIDEO_DIR, write_calibration, write_ground_truth, write_map
from visionops.data.schema import GroundTruth, ObjectAnnotation
from visionops.data.synthetic.annotate import amodal_box
from visionops.data.synthetic.cameras import CameraSpec, camera_ids, footprint_polygon, place_cameras
from visionops.data.synthetic.layout import Layout, generate_layout, map_geometry, render_map
from visionops.data.synthetic.motion import Track, simulate_tracks
from visionops.data.synthetic.population import choose_classes, sample_instance
from visionops.data.synthetic.renderer import CameraJob, CameraResult, render_camera
from visionops.data.synthetic.shading import Lighting

VERSION = "visionops-synthetic-1"
SPLIT_REAL_SCENES = {"train": (0, 15), "val": (15, 2), "test": (17, 4)}
"""(first scene number, scene count) of the real MTMC 2025 split: train Warehouse_000-014, val 015-016, test 017-020."""
FIRST_EXTRA_SCENE = max(first + count for first, count in SPLIT_REAL_SCENES.values())
"""Scenes beyond the real split's counts are numbered from here (21: past the last real warehouse)."""

_STREAM_LAYOUT, _STREAM_LIGHT, _STREAM_CAMERAS, _STREAM_OBJECTS, _STREAM_MOTION, _STREAM_RENDER = range(1, 7)

ProgressFn = Callable[[int], None]


# --------------------------------------------------------------------------------------------------
# naming and seeds
# --------------------------------------------------------------------------------------------------


def scene_number(scenes: Mapping[str, int], split: str, index: int) -> int:
    """The ``NNN`` of the ``index``-th scene of ``split`` (``Warehouse_NNN``).

    The first scenes of each split take the real split's numbers (train 000-014, val 015-016, test 017-020), so
    val and test tracks carry real AI City 2025 scene ids. Scenes past a split's real count continue after
    Warehouse_020 (from 021), split by split in ``SPLITS`` order: 40 train scenes are 000-014 and 021-045, and
    val/test keep their names. A scene's content depends on (seed, split, index), never on its name.
    """
    check_splits([*scenes, split])
    first, real = SPLIT_REAL_SCENES[split]
    if index < real:
        return first + index
    earlier = SPLITS[:SPLITS.index(split)]
    extra_before = sum(max(0, int(scenes.get(s, 0)) - SPLIT_REAL_SCENES[s][1]) for s in earlier)
    return FIRST_EXTRA_SCENE + extra_before + index - real


def check_splits(names: Iterable[str]) -> None:
    """Raise ``ValueError`` naming those of ``names`` (e.g. the keys of a scene-count mapping) that are no split."""
    unknown = sorted(set(names) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown splits {unknown}; expected some of {list(SPLITS)}")


def scene_name(scenes: Mapping[str, int], split: str, index: int) -> str:
    """``Warehouse_NNN`` of the ``index``-th scene of ``split`` (see :func:`scene_number`)."""
    return f"Warehouse_{scene_number(scenes, split, index):03d}"


def scene_seed(seed: int, split: str, index: int, stream: int) -> np.random.SeedSequence:
    """The seed of one part (stream) of one scene; independent of other scenes, splits and streams."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(split.encode()), int(index), stream])


# --------------------------------------------------------------------------------------------------
# scene specification
# --------------------------------------------------------------------------------------------------


@dataclass
class SceneSpec:
    """A scene before rendering: everything needed to render and annotate it.

    Attributes:
        name, split, index: ``Warehouse_000``, ``train``, 0.
        layout, lighting, cameras, tracks: the content.
        frames, fps: clip length and rate.
        depth: write depth maps; crf: x264 quality; min_visible_pixels: visible-box threshold.
        texture_seed: shared by the cameras; noise_seeds: one per camera.
        seed: the dataset seed (recorded in calibration.json).
    """

    name: str
    split: str
    index: int
    layout: Layout
    lighting: Lighting
    cameras: list[CameraSpec]
    tracks: list[Track]
    frames: int
    fps: float
    depth: bool = True
    crf: int = 18
    min_visible_pixels: int = 16
    texture_seed: int = 0
    noise_seeds: tuple[int, ...] = ()
    seed: int = 0


def _validate(params: Any) -> None:
    if params.width % 2 or params.height % 2:
        raise ValueError(f"width and height must be even (H.264 4:2:0), got {params.width}x{params.height}")
    if params.cameras < 1 or params.frames < 1:
        raise ValueError("cameras and frames must be >= 1")
    lo, hi = params.objects_per_scene
    if lo < 0 or hi < lo:
        raise ValueError(f"objects_per_scene must be (min, max) with 0 <= min <= max, got {(lo, hi)}")


def build_scene_spec(params: Any, split: str, scene_index: int) -> SceneSpec:
    """Draw the scene ``scene_index`` of ``split`` from ``params`` (no rendering)."""
    _validate(params)
    seed = int(params.seed)

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng(scene_seed(seed, split, scene_index, stream))

    layout = generate_layout(rng(_STREAM_LAYOUT), tuple(params.floor_size))
    lighting = Lighting.random(rng(_STREAM_LIGHT))
    ids = camera_ids(int(params.cameras), params.camera_naming)
    cameras = place_cameras(rng(_STREAM_CAMERAS), layout, ids, int(params.width), int(params.height))
    obj_rng = rng(_STREAM_OBJECTS)
    lo, hi = params.objects_per_scene
    count = int(obj_rng.integers(int(lo), int(hi) + 1))
    classes = choose_classes(obj_rng, list(params.classes), count, scene_index)
    instances = [sample_instance(obj_rng, c) for c in classes]
    tracks = simulate_tracks(scene_seed(seed, split, scene_index, _STREAM_MOTION), layout, instances,
                             int(params.frames), float(params.fps))
    render_rng = rng(_STREAM_RENDER)
    texture_seed = int(render_rng.integers(2**31))
    noise_seeds = tuple(int(s) for s in render_rng.integers(2**63, size=len(cameras)))
    return SceneSpec(
        name=scene_name(params.scenes, split, scene_index),
        split=split,
        index=scene_index,
        layout=layout,
        lighting=lighting,
        cameras=cameras,
        tracks=tracks,
        frames=int(params.frames),
        fps=float(params.fps),
        depth=bool(params.depth),
        crf=int(params.crf),
        min_visible_pixels=int(params.min_visible_pixels),
        texture_seed=texture_seed,
        noise_seeds=noise_seeds,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------------
# annotations
# --------------------------------------------------------------------------------------------------


def calibration_for(spec: SceneSpec) -> Calibration:
    """calibration.json content: every sensor via :meth:`CameraCalibration.from_pose`, the map's scale
    and translation, and the floor footprint of each view as a WKT ``fieldOfViewPolygon``."""
    geometry = map_geometry(spec.layout)
    sensors = []
    for cam in spec.cameras:
        footprint = footprint_polygon(cam, spec.layout)
        sensors.append(CameraCalibration.from_pose(
            cam.id, cam.K, cam.extrinsic, width=cam.width, height=cam.height, fps=spec.fps,
            scale_factor=geometry.scale_factor, translation_to_global=geometry.translation,
            extra_attributes={
                "fieldOfView": round(cam.hfov_deg, 4),
                "fieldOfViewPolygon": footprint.wkt if footprint.is_empty else _wkt(footprint),
                "source": "synthetic",
            },
        ))
    extra = {"version": VERSION,
             "generator": {"name": "visionops.data.synthetic", "seed": spec.seed, "split": spec.split,
                           "sceneIndex": spec.index}}
    return Calibration(sensors=sensors, extra=extra)


def _wkt(polygon) -> str:
    from shapely import wkt  # noqa: PLC0415

    return wkt.dumps(polygon, rounding_precision=4)


def amodal_boxes(spec: SceneSpec, track: Track, frame: int) -> dict[str, np.ndarray]:
    """{camera id: (4,) amodal box} of a track at ``frame`` for the cameras that see its box."""
    corners = track.corners(frame)
    out = {}
    for cam in spec.cameras:
        box = amodal_box(corners, cam.R, cam.t, cam.K, cam.width, cam.height)
        if box is not None:
            out[cam.id] = box
    return out


def ground_truth_for(spec: SceneSpec, results: Mapping[str, CameraResult] | None = None) -> GroundTruth:
    """Per-frame annotations of every present object, sorted by object id.

    ``results`` (camera id -> rendered result) supplies the visible boxes; without it (simulation
    only) every ``2d bounding box visible`` is empty.
    """
    gt: GroundTruth = {}
    for f in range(spec.frames):
        objects = []
        for index, track in enumerate(spec.tracks):
            if not track.present[f]:
                continue
            visible = {}
            for cam_id, result in (results or {}).items():
                hit = result.visible.get(f, {}).get(index)
                if hit is not None:
                    visible[cam_id] = hit[1]
            objects.append(ObjectAnnotation(
                object_type=track.cls,
                object_id=track.object_id,
                location=track.location(f),
                scale=track.instance.scale.copy(),
                rotation=track.rotation(f),
                bbox_visible=visible,
                bbox_full=amodal_boxes(spec, track, f),
            ))
        gt[f] = sorted(objects, key=lambda o: o.object_id)
    return gt


def simulate_ground_truth(params: Any, split: str, scene_index: int) -> GroundTruth:
    """Ground truth of a scene without rendering (no visible boxes): for quick checks of the content."""
    return ground_truth_for(build_scene_spec(params, split, scene_index))


# --------------------------------------------------------------------------------------------------
# running camera jobs
# --------------------------------------------------------------------------------------------------

_WORKER_QUEUE = None


def _init_worker(progress_queue) -> None:
    global _WORKER_QUEUE
    _WORKER_QUEUE = progress_queue


def _run_job(job: CameraJob) -> CameraResult:
    q = _WORKER_QUEUE
    return render_camera(job, progress=None if q is None else q.put)


class _Runner:
    """Runs camera jobs in ``workers`` spawned processes (or in this process when workers <= 1)."""

    def __init__(self, workers: int, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.executor = None
        self.queue = None
        if workers > 1:
            ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (MLflow, tqdm)
            self.queue = ctx.Queue()
            self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                                initargs=(self.queue,))

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the workers (pending jobs are cancelled, running ones finish)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.queue.close()
            self.executor = None

    def submit(self, job: CameraJob) -> Future:
        if self.executor is not None:
            return self.executor.submit(_run_job, job)
        future: Future = Future()
        try:
            future.set_result(render_camera(job, progress=self.progress))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future

    def drain(self) -> None:
        if self.queue is None or self.progress is None:
            return
        while True:
            try:
                n = self.queue.get_nowait()
            except queue.Empty:
                return
            self.progress(n)

    def as_completed(self, futures: list[Future]):
        """Yield futures as they finish, forwarding worker progress meanwhile."""
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            self.drain()
            yield from done
        self.drain()


def _camera_jobs(spec: SceneSpec, scene_dir: Path) -> list[CameraJob]:
    jobs = []
    for cam, noise_seed in zip(spec.cameras, spec.noise_seeds, strict=True):
        jobs.append(CameraJob(
            camera=cam, layout=spec.layout, lighting=spec.lighting, tracks=spec.tracks, frames=spec.frames,
            fps=spec.fps, video_path=str(scene_dir / VIDEO_DIR / f"{cam.id}.mp4"),
            depth_path=str(scene_dir / DEPTH_DIR / f"{cam.id}.h5") if spec.depth else None,
            crf=spec.crf, min_visible_pixels=spec.min_visible_pixels, texture_seed=spec.texture_seed,
            noise_seed=noise_seed,
        ))
    return jobs


def _write_static(spec: SceneSpec, scene_dir: Path) -> None:
    (scene_dir / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    if spec.depth:
        (scene_dir / DEPTH_DIR).mkdir(parents=True, exist_ok=True)
    write_calibration(scene_dir, calibration_for(spec))
    write_map(scene_dir, render_map(spec.layout, map_geometry(spec.layout)))


def _finish(spec: SceneSpec, scene_dir: Path, results: dict[str, CameraResult], started: float) -> dict:
    """Write ground_truth.json (not for test scenes, as in the real test split) and summarise."""
    if spec.split != "test":
        write_ground_truth(scene_dir, ground_truth_for(spec, results))
    timings: Counter = Counter()
    for r in results.values():
        timings.update(r.timings)
    visible = sum(len(v) for r in results.values() for v in r.visible.values())
    objects = Counter(t.cls for t in spec.tracks if t.present.any())
    size = sum(p.stat().st_size for p in scene_dir.rglob("*") if p.is_file())
    return {
        "scene": spec.name,
        "split": spec.split,
        "cameras": [c.id for c in spec.cameras],
        "frames": spec.frames,
        "objects": dict(sorted(objects.items())),
        "visible_boxes": visible,
        "seconds": round(time.perf_counter() - started, 3),
        "bytes": size,
        "timings": {k: round(v, 3) for k, v in sorted(timings.items())},
    }


def render_spec(spec: SceneSpec, scene_dir: Path, *, workers: int = 1,
                progress: ProgressFn | None = None) -> dict:
    """Render an explicit :class:`SceneSpec` into the folder ``scene_dir`` (created if missing)."""
    started = time.perf_counter()
    scene_dir = Path(scene_dir)
    _write_static(spec, scene_dir)
    jobs = _camera_jobs(spec, scene_dir)
    with _Runner(min(workers, len(jobs)), progress) as runner:
        futures = {runner.submit(job): job.camera.id for job in jobs}
        results = {futures[f]: f.result() for f in runner.as_completed(list(futures))}
    return _finish(spec, scene_dir, results, started)


def render_scene(params: Any, scene_dir: Path, *, scene_index: int, split: str,
                 progress: ProgressFn | None = None) -> dict:
    """Render scene ``scene_index`` of ``split`` into the existing empty folder ``scene_dir``.

    With ``params.workers > 1`` the cameras render in *spawned* processes, so a script calling this
    must guard its entry point (``if __name__ == "__main__":``), as multiprocessing requires.

    Args:
        progress: called with the number of camera-frames finished since its previous call.
    Returns:
        Summary: scene, split, cameras, frames, objects per class, visible boxes, seconds, bytes, timings.
    """
    spec = build_scene_spec(params, split, scene_index)
    return render_spec(spec, Path(scene_dir), workers=int(params.workers), progress=progress)


def render_dataset(params: Any, out_root: Path, progress: ProgressFn | None = None) -> list[dict]:
    """Render every scene of ``params.scenes`` to ``out_root/<split>/<Scene>/``.

    The camera jobs of all scenes share one pool of ``params.workers`` spawned processes (guard the
    calling script's entry point). Each scene is written to a temporary folder and renamed into place
    when complete (an existing scene folder is replaced). Returns one summary per scene (as
    :func:`render_scene`, plus its ``path``), in split order.
    """
    out_root = Path(out_root)
    scenes = {s: int(n) for s, n in params.scenes.items() if int(n) > 0}
    check_splits(scenes)  # before anything is written
    summaries: dict[tuple[str, int], dict] = {}
    with contextlib.ExitStack() as stack:
        runner = stack.enter_context(_Runner(int(params.workers), progress))
        pending: dict[Future, tuple[str, int, str]] = {}
        specs: dict[tuple[str, int], tuple[SceneSpec, Path, float]] = {}
        results: dict[tuple[str, int], dict[str, CameraResult]] = {}
        for split in SPLITS:
            for index in range(scenes.get(split, 0)):
                started = time.perf_counter()
                spec = build_scene_spec(params, split, index)
                tmp = stack.enter_context(atomic.atomic_dir(out_root / split / spec.name))
                _write_static(spec, tmp)
                specs[(split, index)] = (spec, tmp, started)
                results[(split, index)] = {}
                for job in _camera_jobs(spec, tmp):
                    pending[runner.submit(job)] = (split, index, job.camera.id)
        try:
            for future in runner.as_completed(list(pending)):
                split, index, cam_id = pending[future]
                results[(split, index)][cam_id] = future.result()
                spec, tmp, started = specs[(split, index)]
                if len(results[(split, index)]) == len(spec.cameras):
                    summaries[(split, index)] = _finish(spec, tmp, results[(split, index)], started)
        except BaseException:
            runner.shutdown()  # before the temporary folders are removed under the workers' feet
            raise
        # Leaving the ExitStack renames every temporary scene folder into place.
    out = []
    for (split, _), summary in sorted(summaries.items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])):
        summary["path"] = str(out_root / split / summary["scene"])
        out.append(summary)
    return out
