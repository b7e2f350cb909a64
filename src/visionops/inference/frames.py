"""Frame sources for inference: per-frame network inputs of one camera group, from OVPKL or a raw scene.

Both sources yield :class:`FrameInputs` prepared exactly as training prepares an un-augmented frame
(:func:`visionops.data.sparse4d_dataset.camera_input`: resized to cover the network input with the aspect kept,
the overhang cropped) and the projection matrices mapping the group's **BEV frame** (world minus ``bev_origin``,
a pure translation, see :mod:`visionops.data.ovpkl`) to pixels of those images.

* :func:`frames_from_ovpkl` reads a converted BEV group (OVPKL infos + HDF5 frame store).
* :func:`frames_from_raw_scene` decodes a raw scene's videos frame-synchronously with its ``calibration.json``.
  All (or the chosen) cameras form one group whose origin is computed exactly as the converter's ``all``
  grouping mode does (centroid of the union of the dilated floor footprints, z = 0), so any raw scene folder
  works and the result equals the OVPKL input of a conversion with ``bev_groups.mode: all``.

Camera ending early (raw scenes): ``on_short_video="drop"`` (default) drops the camera whose video ended and
goes on with the others (the camera embedding is geometry-based, so the camera count may change; the instance
bank does not depend on it), with a warning naming the cameras and the frame; ``"stop"`` ends the stream at the
shortest video, as the converter does. The stream ends when no camera is left.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from visionops.data.ovpkl import load_ovpkl, recentre_world_to_camera
from visionops.data.sparse4d_dataset import camera_input


@dataclass
class FrameInputs:
    """One frame of one camera group, ready for :class:`~visionops.models.sparse4d.model.Sparse4D`.

    Attributes:
        images: (K, 3, H, W) float32 ImageNet-normalised RGB at the network input size.
        projection_mat: (K, 4, 4) float64 BEV metres -> input pixels (homogeneous; row 3 gives depth).
        image_wh: (K, 2) float32 ``[W, H]`` of the input images, pixels.
        focal: (K,) float32 fx of the input-size intrinsics, pixels.
        timestamp: seconds (``frame_id / source fps``, as the converter writes).
        frame_id: 0-based source frame index (the ground-truth / track-file frame id).
        cameras: the K camera ids in the order of the arrays.
        scene_name: stream id (``"<Scene>+<group>"``); a change resets the instance bank.
        bev_origin: (3,) float64 world metres; world = BEV + origin.
    """

    images: np.ndarray
    projection_mat: np.ndarray
    image_wh: np.ndarray
    focal: np.ndarray
    timestamp: float
    frame_id: int
    cameras: list[str]
    scene_name: str
    bev_origin: np.ndarray


def _assemble(images: list[np.ndarray], mats: list[np.ndarray], focals: list[float], input_size: tuple[int, int],
              **fields) -> FrameInputs:
    k = len(images)
    return FrameInputs(
        images=np.stack(images), projection_mat=np.stack(mats),
        image_wh=np.tile(np.asarray(input_size, dtype=np.float32), (k, 1)),
        focal=np.asarray(focals, dtype=np.float32), **fields)


def _check_size(input_size: Sequence[int]) -> tuple[int, int]:
    if len(input_size) != 2 or min(int(v) for v in input_size) < 16:
        raise ValueError(f"input_size must be (width, height) of at least 16 px, got {tuple(input_size)}")
    return int(input_size[0]), int(input_size[1])


def frames_from_ovpkl(ovpkl_path: str | os.PathLike, data_root: str | os.PathLike, input_size: Sequence[int],
                      max_frames: int | None = None) -> Iterator[FrameInputs]:
    """Frames of one converted BEV group, in timestamp order.

    Args:
        ovpkl_path: ``<Scene>+<group>_infos_<split>.pkl``.
        data_root: folder the frame-store paths in ``data_path`` are relative to (the conversion root).
        input_size: network input (W, H) pixels.
        max_frames: stop after this many frames; None = all.

    Raises:
        FileNotFoundError: the OVPKL file or a frame store is missing. OvpklError: malformed file.
    """
    from visionops.data.frame_store import FrameStore  # noqa: PLC0415

    size = _check_size(input_size)
    path = Path(ovpkl_path)
    data = load_ovpkl(path)
    metadata = data["metadata"]
    if "bev_origin" not in metadata:
        warnings.warn(f"{path}: metadata has no 'bev_origin'; predictions stay in the BEV frame (origin 0)",
                      stacklevel=2)
    origin = np.asarray(metadata.get("bev_origin", (0.0, 0.0, 0.0)), dtype=np.float64)
    infos = sorted(data["infos"], key=lambda info: info["timestamp"])[:max_frames]
    stores: dict[str, FrameStore] = {}
    try:
        for info in infos:
            frame = int(info["frame_idx"])
            cameras = sorted(info["cams"])
            images, mats, focals = [], [], []
            for cam in cameras:
                entry = info["cams"][cam]
                store_path = str(entry["data_path"][0])
                if store_path not in stores:
                    full = Path(store_path) if Path(store_path).is_absolute() else Path(data_root) / store_path
                    stores[store_path] = FrameStore(full)
                image, mat, fx, _ = camera_input(stores[store_path].rgb(frame), entry["cam_intrinsic"],
                                                 entry["sensor2world_transform"], size)
                images.append(image)
                mats.append(mat)
                focals.append(fx)
            yield _assemble(images, mats, focals, size, timestamp=float(info["timestamp"]), frame_id=frame,
                            cameras=cameras, scene_name=str(info["scene_name"]), bev_origin=origin.copy())
    finally:
        for store in stores.values():
            store.close()


def raw_scene_group(scene_dir: str | os.PathLike, cameras: Sequence[str] | None = None):
    """(RawScene, BevGroup of the cameras, camera ids) of a raw scene, every problem named with its file.

    Raises:
        FileNotFoundError: no scene folder, no ``calibration.json``, no videos, or a camera's video missing.
        ValueError: unreadable / non-finite calibration (file and camera named), cameras not in the calibration.
    """
    from visionops.data.bev_groups import make_groups  # noqa: PLC0415
    from visionops.data.raw import RawScene  # noqa: PLC0415

    scene = RawScene(scene_dir)
    if not scene.calibration_path.is_file():
        raise FileNotFoundError(f"{scene.calibration_path}: missing; a raw scene needs its calibration.json")
    calibration = scene.calibration  # SchemaError (a ValueError) names the file, sensor and key
    ids = list(cameras) if cameras is not None else scene.camera_ids
    if not ids:
        raise FileNotFoundError(f"{scene.path / 'videos'}: no *.mp4 videos in the scene")
    for cam in ids:
        if not scene.video_path(cam).is_file():
            raise FileNotFoundError(f"{scene.video_path(cam)}: video of camera {cam!r} missing")
        if cam not in calibration.camera_ids:
            raise ValueError(f"{scene.calibration_path}: no sensor for camera {cam!r} "
                             f"(sensors: {', '.join(calibration.camera_ids)})")
        sensor = calibration.camera(cam)
        # The parser rejects non-finite matrices; this also covers calibrations built in memory.
        for name, matrix in (("intrinsicMatrix", sensor.intrinsic), ("extrinsicMatrix", sensor.extrinsic)):
            if not np.all(np.isfinite(matrix)):
                raise ValueError(f"{scene.calibration_path}: sensor {cam!r}, key {name!r}: non-finite entry")
    group = make_groups(calibration, ids, mode="all")[0]
    return scene, group, sorted(ids)


def frames_from_raw_scene(scene_dir: str | os.PathLike, input_size: Sequence[int],
                          cameras: Sequence[str] | None = None, frame_step: int = 1, max_frames: int | None = None,
                          on_short_video: Literal["drop", "stop"] = "drop") -> Iterator[FrameInputs]:
    """Frames of a raw scene folder (``videos/*.mp4`` + ``calibration.json``), decoded frame-synchronously.

    Args:
        scene_dir: the scene folder; its name is the scene name (``<Scene>+bev-sensor-all`` is the stream id).
        input_size: network input (W, H) pixels.
        cameras: camera ids to use (default: every video).
        frame_step: keep source frames 0, step, 2 step, ...; timestamps stay ``frame / fps``.
        max_frames: stop after this many yielded frames; None = the whole videos.
        on_short_video: ``drop`` the camera whose video ends first and go on, or ``stop`` the stream there.

    Raises:
        FileNotFoundError / ValueError: see :func:`raw_scene_group`. VideoDecodeError: a damaged video.
    """
    from visionops.data.video import iter_frames, probe  # noqa: PLC0415

    if frame_step < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"frame_step and max_frames must be >= 1, got {frame_step}, {max_frames}")
    if on_short_video not in ("drop", "stop"):
        raise ValueError(f"on_short_video must be 'drop' or 'stop', got {on_short_video!r}")
    size = _check_size(input_size)
    scene, group, ids = raw_scene_group(scene_dir, cameras)
    origin = np.asarray(group.origin, dtype=np.float64)
    scene_name = f"{scene.name}+{group.name}"
    bev_to_camera = {c: recentre_world_to_camera(scene.calibration.camera(c).world_to_camera, origin) for c in ids}
    fps = probe(scene.video_path(ids[0]))["fps"] or scene.calibration.camera(ids[0]).fps or 30.0
    stop = None if max_frames is None else max_frames * frame_step
    streams = {c: iter_frames(scene.video_path(c), step=frame_step, stop=stop) for c in ids}
    try:
        for _ in range(max_frames) if max_frames is not None else itertools.count():
            decoded: dict[str, tuple[int, np.ndarray]] = {}
            ended = []
            for cam in list(streams):
                item = next(streams[cam], None)
                if item is None:
                    ended.append(cam)
                    streams.pop(cam).close()
                else:
                    decoded[cam] = item
            if not decoded:
                return  # every remaining video ended together: the normal end
            if ended:
                action = "stopping the stream there" if on_short_video == "stop" else f"dropping camera(s) {ended}"
                warnings.warn(f"{scene.path}: the videos of {ended} ended before frame {max(decoded.values())[0]} "
                              f"while other cameras go on; {action}", stacklevel=2)
                if on_short_video == "stop":
                    return
            frames = {f for f, _ in decoded.values()}
            if len(frames) != 1:  # cannot happen with in-order decoding; guards frame synchrony
                raise RuntimeError(f"{scene.path}: cameras out of sync at frames {sorted(frames)}")
            frame = frames.pop()
            images, mats, focals = [], [], []
            for cam, (_, rgb) in decoded.items():
                # K refers to the video's pixels (as in the converter), so the decoded frame is its source.
                image, mat, fx, _ = camera_input(rgb, scene.calibration.camera(cam).intrinsic, bev_to_camera[cam], size)
                images.append(image)
                mats.append(mat)
                focals.append(fx)
            yield _assemble(images, mats, focals, size, timestamp=frame / float(fps), frame_id=frame,
                            cameras=list(decoded), scene_name=scene_name, bev_origin=origin.copy())
    finally:
        # Close the decoders explicitly: an abandoned PyAV generator must flush its frame threads.
        for gen in streams.values():
            gen.close()
