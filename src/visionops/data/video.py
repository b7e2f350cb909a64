"""Video I/O with PyAV (FFmpeg): frame-exact decode and H.264 encode.

PyAV is used rather than OpenCV because its wheels carry an H.264 encoder (libx264) and because it
decodes every frame in order without timestamp-based seeking, so frame ``i`` of the file is frame ``i``
of the ground truth.
"""

from __future__ import annotations

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


def iter_frames(path: str | os.PathLike, *, start: int = 0, stop: int | None = None,
                step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, rgb (H, W, 3) uint8)`` for frames ``start, start+step, ... < stop`` in order."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if stop is not None and index >= stop:
                break
            if index >= start and (index - start) % step == 0:
                yield index, frame.to_ndarray(format="rgb24")


def read_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    """Decode frame ``index`` (0-based) exactly, by decoding from the start: (H, W, 3) uint8."""
    for i, rgb in iter_frames(path, start=index, stop=index + 1):
        if i == index:
            return rgb
    raise IndexError(f"{path}: frame {index} is past the end of the video ({count_frames(path)} frames)")


def probe(path: str | os.PathLike) -> dict:
    """Container metadata without decoding: width, height, fps, codec and the frame count if recorded."""
    av = _av()
    with av.open(str(path)) as container:
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
    """Number of frames: the container's count, or (``exact`` or unknown) by demuxing every packet."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames and not exact:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)
