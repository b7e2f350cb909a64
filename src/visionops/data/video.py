"""Video I/O with PyAV (FFmpeg): frame-exact decode and H.264 encode.

PyAV is used rather than OpenCV because its wheels carry an H.264 encoder (libx264) and because it
decodes every frame in order without timestamp-based seeking, so frame ``i`` of the file is frame ``i``
of the ground truth.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np


def _av():
    import av  # noqa: PLC0415  (lazy: keeps CLI start-up fast)

    av.logging.set_level(av.logging.ERROR)
    return av


def best_h264_encoder() -> str:
    """Name of the best available H.264 encoder (libx264, else openh264, else mpeg4 as a last resort)."""
    av = _av()
    for name in ("libx264", "libopenh264", "h264"):
        try:
            codec = av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing codec
            continue
        if codec.is_encoder:
            return name
    return "mpeg4"


class VideoWriter:
    """Write RGB frames (H, W, 3) uint8 to an mp4 file.

    Args:
        path: output ``.mp4``.
        width, height: frame size in pixels (even numbers for yuv420p).
        fps: frames per second; frame ``i`` gets presentation time ``i / fps``.
        crf: x264 constant rate factor (lower = better quality; 18 is visually lossless).
        preset: x264 speed preset.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float = 30.0,
                 crf: int = 18, preset: str = "veryfast", codec: str | None = None) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"video size must be even for yuv420p, got {width}x{height}")
        av = _av()
        self.path = Path(path)
        self.width, self.height = width, height
        self._container = av.open(str(self.path), mode="w", format="mp4")
        codec = codec or best_h264_encoder()
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # One thread per writer: the renderer already runs one writer per core. No B-frames: with them
            # libx264 (PyAV wheels) sometimes encodes identical input to different bytes (1-4 variants in
            # 24 encodes), which breaks byte-reproducible datasets; without them 225/225 were identical.
            self._stream.options = {"crf": str(crf), "preset": preset, "threads": "1", "x264-params": "bframes=0"}
        elif codec == "mpeg4":
            self._stream.options = {"qscale": "2"}
        self.codec = codec
        self.frames_written = 0

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame; ``rgb`` is (H, W, 3) uint8."""
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected ({self.height}, {self.width}, 3) uint8, got {rgb.shape} {rgb.dtype}")
        frame = _av().VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoDecodeError(RuntimeError):
    """A video that cannot be opened or decoded completely.

    Attributes:
        path: the video file.
        frame: 0-based index of the first frame that could not be decoded (0 when the file cannot be opened).
        reason: what FFmpeg (or the completeness check) reported.
    """

    def __init__(self, path: str | os.PathLike, frame: int, reason: str) -> None:
        self.path = Path(path)
        self.frame = int(frame)
        self.reason = reason
        super().__init__(f"{self.path}: cannot decode frame {self.frame}: {reason}. The file is damaged or "
                         "incomplete: re-download the scene (re-run the download stage; re-render synthetic data)")

    def __reduce__(self):  # picklable with its fields, so it crosses process pools intact
        return type(self), (self.path, self.frame, self.reason)


def _reason(exc: Exception) -> str:
    """FFmpeg's error text plus its last log line (``moov atom not found``...), which says more."""
    text = getattr(exc, "strerror", None) or str(exc)
    log = getattr(exc, "log", None)
    if log and len(log) >= 3 and str(log[2]).strip():
        text = f"{text} ({str(log[2]).strip()})"
    return text


def _open(path: str | os.PathLike):
    """Open a video container; VideoDecodeError at frame 0 if it is not a readable video.

    A missing or unreadable file keeps its OSError (FileNotFoundError, PermissionError...): that is not damage.
    """
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        if isinstance(exc, OSError):
            raise
        raise VideoDecodeError(path, 0, f"cannot open the file: {_reason(exc)}") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, 0, "the file has no video stream")
    return container


def iter_av_frames(path: str | os.PathLike, *, stop: int | None = None, check_complete: bool = False,
                   allow_corrupt: bool = False) -> Iterator[tuple[int, object]]:
    """Yield ``(frame_index, av.VideoFrame)`` for frames ``0, 1, ... < stop``, decoded in order.

    The frames are PyAV's, not yet converted, so callers choose the pixel format (``to_ndarray(format=...)``)
    and skip the conversion of frames they do not keep. Raises :class:`VideoDecodeError`:

    * at frame 0 when the file cannot be opened (truncated mp4 without its ``moov`` atom, empty, not a video);
    * at the first frame not decoded when FFmpeg fails while demuxing or decoding;
    * at a frame the decoder flags as corrupt (it concealed bitstream errors: garbage in the payload often
      decodes this way, without an FFmpeg error), unless ``allow_corrupt``;
    * with ``check_complete``, at the first missing frame when the stream ends (without reaching ``stop``)
      before the frame count its header declares: damage can also make FFmpeg drop frames silently.
    """
    av = _av()
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        declared = int(stream.frames or 0)
        index = 0
        try:
            for frame in container.decode(stream):
                if stop is not None and index >= stop:
                    return
                if frame.is_corrupt and not allow_corrupt:
                    raise VideoDecodeError(path, index, "the decoder found bitstream errors in this frame")
                yield index, frame
                index += 1
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(path, index, _reason(exc)) from exc
        finally:
            # Stopping early (``stop``, an error, an abandoned generator) leaves FFmpeg's frame threads busy.
            # The codec context is then freed holding the GIL while it joins them, and a thread that logs an
            # error needs the GIL for PyAV's log callback: a deadlock (PyAV 18.1, every time a stop was reached
            # while the caller still held decoded av frames). flush_buffers() waits for them without the GIL.
            with contextlib.suppress(Exception):
                stream.codec_context.flush_buffers()
        if check_complete and declared and index < declared and (stop is None or index < stop):
            raise VideoDecodeError(path, index, f"the stream ends after {index} of the {declared} frames its header "
                                                "declares (truncated or corrupt)")


def iter_frames(path: str | os.PathLike, *, start: int = 0, stop: int | None = None, step: int = 1,
                check_complete: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb (H, W, 3) uint8)`` for frames ``start, start+step, ... < stop`` in order.

    Every frame before ``stop`` is decoded (H.264 frames depend on earlier ones), but only the yielded ones are
    converted to RGB. Errors: :class:`VideoDecodeError` naming the file and frame, as :func:`iter_av_frames`
    (``check_complete``: fail when the stream has fewer frames than its header declares).
    """
    for index, frame in iter_av_frames(path, stop=stop, check_complete=check_complete):
        if index >= start and (index - start) % step == 0:
            yield index, frame.to_ndarray(format="rgb24")


def read_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    """Decode frame ``index`` (0-based) exactly, by decoding from the start: (H, W, 3) uint8."""
    for i, rgb in iter_frames(path, start=index, stop=index + 1):
        if i == index:
            return rgb
    raise IndexError(f"{path}: frame {index} is past the end of the video ({count_frames(path)} frames)")


def probe(path: str | os.PathLike) -> dict:
    """Container metadata without decoding: width, height, fps, codec and the frame count if recorded.

    VideoDecodeError (frame 0) when the file is not a readable video.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "fps": fps,
            "codec": stream.codec_context.name,
            "frames": int(stream.frames) if stream.frames else None,
        }


def count_frames(path: str | os.PathLike, *, exact: bool = False) -> int:
    """Number of frames: the container's count, or (``exact`` or unknown) by demuxing every packet.

    Demuxing does not decode, so it does not find damage inside the frames: use
    ``iter_frames(..., check_complete=True)`` for that.
    """
    av = _av()
    with _open(path) as container:
        stream = container.streams.video[0]
        if stream.frames and not exact:
            return int(stream.frames)
        count = 0
        try:
            for packet in container.demux(stream):
                count += bool(packet.size)
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(path, count, _reason(exc)) from exc
        return count
