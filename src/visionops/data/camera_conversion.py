"""Conversion of one camera: decode its video once, resize, JPEG-encode, and write a frame store (+ depth).

:func:`convert_camera` is what the convert stage runs per camera, in parallel worker processes.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visionops.data.frame_store import DEPTH_GROUP, FrameStoreWriter, frame_index
from visionops.data.jpeg import check_quality, cv2_module, encode_bgr

_RAW_DEPTH_KEY_FORMAT = "distance_to_image_plane_{:05d}.png"

# convert_camera writes JPEGs and depth in batches of this many frames (and reports progress after each):
# HDF5 calls are ~2x slower when interleaved with decoding and encoding, which evict HDF5's code and metadata
# from the CPU caches (960x540: 0.8-1.2 ms per frame for JPEG + depth one by one, 0.45-0.5 in batches of 8,
# 0.3-0.35 in batches of 32). 16 JPEGs are a few MB of memory.
_WRITE_BATCH = 16

ProgressFn = Callable[[int], None]


@dataclass
class CameraConversionStats:
    """What :func:`convert_camera` wrote and where its time went (seconds of ``time.perf_counter``).

    ``decode_seconds`` includes FFmpeg decoding of every frame up to the last kept one and the conversion of
    the kept ones to BGR; ``write_seconds`` the HDF5 writes of the JPEGs and the final close + rename;
    ``depth_seconds`` reading, resizing and writing depth. ``truncated_at``: the first requested source frame
    the video did not have (it is shorter than ``frame_ids``/``max_frames`` asked for), else None.
    """

    camera_id: str
    frames: int
    bytes: int
    decode_seconds: float = 0.0
    resize_seconds: float = 0.0
    encode_seconds: float = 0.0
    write_seconds: float = 0.0
    depth_seconds: float = 0.0
    truncated_at: int | None = None
    total_seconds: float = 0.0
    frame_ids: list[int] | None = None


class _DepthSource:
    """Per-frame depth of one raw ``depth_maps/<cam>.h5`` (datasets at the root or in the group)."""

    def __init__(self, path: Path, source_shape: tuple[int, int], stored_shape: tuple[int, int]) -> None:
        import h5py  # noqa: PLC0415

        self.path = path
        self.source_shape, self.stored_shape = source_shape, stored_shape
        self._file = h5py.File(path, "r")
        # Where the datasets are: the group first when it exists (one lookup per frame), then the root.
        group = self._file.get(DEPTH_GROUP)
        self._places = [group.id, self._file.id] if isinstance(group, h5py.Group) else [self._file.id]
        self._verbatim: tuple[object, int] | None = None  # (creation plist, gzip level) of a copyable dataset

    def _dataset(self, frame: int):
        """The low-level dataset of ``frame`` (h5py.h5d.DatasetID)."""
        from h5py import h5d  # noqa: PLC0415

        key = _RAW_DEPTH_KEY_FORMAT.format(frame)
        for place in self._places:
            try:
                dataset = h5d.open(place, key.encode())
                break
            except KeyError:
                continue
        else:
            raise KeyError(f"{self.path}: no depth for frame {frame} (dataset {key!r}), which the conversion "
                           "keeps; re-download the scene, or convert without depth")
        if dataset.shape != self.source_shape:
            raise ValueError(f"{self.path}: depth of frame {frame} is {dataset.shape}, the video frames are "
                             f"{self.source_shape} (height, width)")
        return dataset

    def _verbatim_level(self, dataset) -> int | None:
        if self.stored_shape != self.source_shape:
            return None
        plist = dataset.get_create_plist()
        # Comparing with the last copyable dataset's creation properties is one call; the full check is five.
        if self._verbatim is not None and plist == self._verbatim[0]:
            return self._verbatim[1]
        level = _verbatim_gzip_level(dataset.shape, dataset.dtype, plist)
        if level is not None:
            self._verbatim = (plist, level)
        return level

    def copy(self, frame: int, writer: FrameStoreWriter) -> None:
        """Write depth of source ``frame`` into ``writer``: its compressed chunk verbatim when possible."""
        from h5py import h5s  # noqa: PLC0415

        dataset = self._dataset(frame)
        level = self._verbatim_level(dataset)
        if level is not None:
            filter_mask, chunk = dataset.read_direct_chunk((0, 0))
            writer.write_depth_chunk(frame, chunk, level=level, filter_mask=filter_mask)
            return
        if dataset.dtype.kind != "u" or dataset.dtype.itemsize != 2:
            raise ValueError(f"{self.path}: depth of frame {frame} is {dataset.dtype}, expected uint16 millimetres")
        depth = np.empty(self.source_shape, dtype=np.uint16)
        dataset.read(h5s.ALL, h5s.ALL, depth)  # HDF5 converts a big-endian file type
        writer.write_depth(frame, resize_nearest(depth, self.stored_shape))

    def close(self) -> None:
        self._file.close()


def _verbatim_gzip_level(shape: tuple[int, ...], dtype: np.dtype, plist) -> int | None:
    """The gzip level if a dataset's compressed chunk can be copied as is into a store dataset, else None.

    That needs the store's own representation: 2-D little-endian uint16 in a single chunk, and exactly the
    filters [shuffle, deflate] in that order (no checksum, no scale-offset).
    """
    from h5py import h5d, h5z  # noqa: PLC0415

    if len(shape) != 2 or dtype != np.dtype("<u2") or plist.get_layout() != h5d.CHUNKED:
        return None
    if tuple(plist.get_chunk()) != tuple(shape):
        return None
    filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
    if [f[0] for f in filters] != [h5z.FILTER_SHUFFLE, h5z.FILTER_DEFLATE]:
        return None
    options = filters[1][2]
    return int(options[0]) if len(options) else None


def resize_nearest(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W, ...) array to ``shape`` = (height, width), pixel-centre aligned.

    Output pixel ``(y, x)`` takes the input pixel under its centre: ``floor((y + 0.5) * H / height)``. Used
    for depth, whose values must not be blended.
    """
    height, width = shape
    if image.shape[:2] == (height, width):
        return image
    rows = np.minimum(((np.arange(height) + 0.5) * image.shape[0] / height).astype(np.intp), image.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * image.shape[1] / width).astype(np.intp), image.shape[1] - 1)
    return np.ascontiguousarray(image[rows[:, None], cols[None, :]])


def _resize_bgr(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    # cv2.resize after FFmpeg's RGB conversion rather than VideoFrame.reformat(w, h): at 960x540 -> 480x270
    # (the usual integer factor) INTER_AREA took 0.2-0.3 ms vs 1.1-1.5 ms for swscale's area/bilinear resize
    # fused with the colour conversion (whose own cost is 0.6-0.8 ms); at 640x360 both ~1.2-1.7 ms. INTER_AREA
    # averages every source pixel (no aliasing) when shrinking; it degrades to nearest when enlarging, so
    # enlarging uses INTER_LINEAR.
    cv2 = cv2_module()
    shrink = width <= bgr.shape[1] and height <= bgr.shape[0]
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _regular_step(frames: list[int]) -> int:
    """The common difference of ``frames`` if it is an arithmetic progression starting at 0, else 0."""
    if not frames or frames[0] != 0:
        return 0
    if len(frames) == 1:
        return 1
    step = frames[1] - frames[0]
    return step if all(b - a == step for a, b in zip(frames[:-1], frames[1:], strict=True)) else 0


def convert_camera(
    video_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    depth_path: str | os.PathLike | None = None,
    frame_ids: Iterable[int] | None = None,
    step: int = 1,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    jpeg_quality: int = 95,
    scene: str = "",
    camera_id: str | None = None,
    progress: ProgressFn | None = None,
) -> CameraConversionStats:
    """Convert one camera's video (and depth) into a frame store at ``out_path``.

    The video is decoded once, in order. Kept source frames: ``frame_ids`` when given (``step`` and
    ``max_frames`` are then ignored), else ``0, step, 2*step, ... < max_frames`` (all frames when None). Each
    kept frame is resized to ``size = (width, height)`` if given (INTER_AREA when shrinking), JPEG-encoded at
    ``jpeg_quality`` and written with its source index; with ``depth_path`` the raw depth of the same frame is
    copied (resized with nearest neighbour). ``progress(n)`` is called with the number of frames written since
    the previous call.

    A video shorter than requested is not an error: the frames it has are written and ``truncated_at`` of
    the result says the first one missing. Errors: VideoDecodeError (file and frame) for a damaged video,
    including one with fewer frames than its header declares; KeyError naming the depth file and frame when a
    kept frame has no depth; OSError naming ``out_path`` when writing fails (a full disk). On any error no
    file (not even a temporary one) is left, and an existing ``out_path`` is kept.
    """
    from visionops.data.video import iter_av_frames, probe  # noqa: PLC0415

    started = time.perf_counter()
    video_path, out_path = Path(video_path), Path(out_path)
    camera_id = camera_id if camera_id is not None else video_path.stem
    quality = check_quality(jpeg_quality)
    if frame_ids is not None:
        wanted: list[int] | None = sorted({frame_index(f) for f in frame_ids})
        stop = wanted[-1] + 1 if wanted else 0
        frame_step = _regular_step(wanted)
        keep = set(wanted).__contains__
    else:
        if int(step) < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        if max_frames is not None and int(max_frames) < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        wanted, frame_step = None, int(step)
        stop = None if max_frames is None else int(max_frames)

        def keep(index: int) -> bool:
            return index % frame_step == 0

    info = probe(video_path)
    source_w, source_h = int(info["width"]), int(info["height"])
    width, height = (int(size[0]), int(size[1])) if size is not None else (source_w, source_h)
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive (width, height), got {size}")
    resize = (width, height) != (source_w, source_h)
    stats = CameraConversionStats(camera_id=camera_id, frames=0, bytes=0)
    written: list[int] = []
    pending: list[tuple[int, bytes]] = []  # encoded, not yet written (see _WRITE_BATCH)
    decoded = 0  # source frames decoded, kept or not
    perf = time.perf_counter

    def write_pending() -> None:
        t0 = perf()
        for index, jpeg in pending:
            writer.write_rgb(index, jpeg)
            t1 = perf()
            if depth is not None:
                depth.copy(index, writer)
            t2 = perf()
            stats.write_seconds += t1 - t0
            stats.depth_seconds += t2 - t1
            t0 = t2
        written.extend(index for index, _ in pending)
        if progress is not None and pending:
            progress(len(pending))
        pending.clear()

    with contextlib.ExitStack() as stack:
        depth = None
        if depth_path is not None:
            depth = _DepthSource(Path(depth_path), (source_h, source_w), (height, width))
            stack.callback(depth.close)
        writer = stack.enter_context(FrameStoreWriter(
            out_path, width=width, height=height, camera_id=camera_id, scene=scene, source_video=video_path,
            source_fps=info["fps"] or 0.0, source_width=source_w, source_height=source_h, frame_step=frame_step,
            jpeg_quality=quality))
        frames = stack.enter_context(contextlib.closing(iter_av_frames(video_path, stop=stop, check_complete=True)))
        t0 = perf()
        for index, frame in frames:
            decoded = index + 1
            if not keep(index):
                continue
            # BGR straight from FFmpeg: what cv2 resizes and encodes, so no colour-order copy.
            bgr = frame.to_ndarray(format="bgr24")
            t1 = perf()
            if resize:
                bgr = _resize_bgr(bgr, width, height)
            t2 = perf()
            pending.append((index, encode_bgr(bgr, quality)))
            t3 = perf()
            stats.decode_seconds += t1 - t0
            stats.resize_seconds += t2 - t1
            stats.encode_seconds += t3 - t2
            if len(pending) >= _WRITE_BATCH:
                write_pending()
            t0 = perf()
        stats.decode_seconds += perf() - t0  # frames decoded after the last kept one, end-of-stream checks
        write_pending()
        t0 = perf()
        writer.close()
        stats.write_seconds += perf() - t0

    stats.frames = len(written)
    stats.frame_ids = written
    stats.bytes = out_path.stat().st_size
    if wanted is not None:
        stats.truncated_at = next((f for f in wanted if f >= decoded), None)
    elif stop is not None and decoded < stop:
        first_missing = math.ceil(decoded / frame_step) * frame_step
        stats.truncated_at = first_missing if first_missing < stop else None
    stats.total_seconds = perf() - started
    return stats
