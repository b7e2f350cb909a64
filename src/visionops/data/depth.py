"""Depth maps in the MTMC 2025 layout: ``depth_maps/<cam>.h5``, one dataset per frame.

Each dataset is named ``distance_to_image_plane_%05d.png`` (5 digits, 0-based frame) and holds a 2D
uint16 array of z-depth (distance to the image plane, not along the ray) in **millimetres**; 0 means no
measurement. Readers convert to metres with ``/ 1000`` (as TAO does).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

DEPTH_KEY_FORMAT = "distance_to_image_plane_{:05d}.png"
_DEPTH_KEY_RE = re.compile(r"^distance_to_image_plane_(\d{5,})\.png$")
MAX_DEPTH_MM = np.iinfo(np.uint16).max


def depth_key(frame: int) -> str:
    return DEPTH_KEY_FORMAT.format(frame)


def frame_of_key(key: str) -> int | None:
    match = _DEPTH_KEY_RE.match(key)
    return int(match.group(1)) if match else None


def metres_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float metres -> uint16 mm; non-finite or <= 0 -> 0, beyond 65.535 m saturates."""
    mm = np.where(np.isfinite(depth_m) & (depth_m > 0), np.rint(depth_m * 1000.0), 0.0)
    return np.clip(mm, 0, MAX_DEPTH_MM).astype(np.uint16)


class DepthWriter:
    """Append per-frame uint16 mm depth maps to one camera's HDF5 file (gzip + shuffle, one chunk/frame)."""

    def __init__(self, path: str | os.PathLike, compression_level: int = 1) -> None:
        import h5py  # noqa: PLC0415

        self.path = Path(path)
        self._file = h5py.File(self.path, "w")
        self._level = compression_level

    def write(self, frame: int, depth_mm: np.ndarray) -> None:
        if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
            raise ValueError(f"depth must be (H, W) uint16 millimetres, got {depth_mm.shape} {depth_mm.dtype}")
        self._file.create_dataset(depth_key(frame), data=depth_mm, compression="gzip",
                                  compression_opts=self._level, shuffle=True, chunks=depth_mm.shape)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DepthWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_depth_mm(path: str | os.PathLike, frame: int) -> np.ndarray:
    """(H, W) uint16 millimetres of ``frame``; KeyError naming the file and dataset if absent."""
    import h5py  # noqa: PLC0415

    with h5py.File(path, "r") as handle:
        key = depth_key(frame)
        if key not in handle:
            raise KeyError(f"{path}: no dataset {key!r} (depth for frame {frame})")
        return handle[key][:]


def list_depth_frames(path: str | os.PathLike) -> list[int]:
    """Sorted frame ids present in a depth file (datasets at the root or in ``distance_to_image_plane_png/``)."""
    import h5py  # noqa: PLC0415

    frames = []
    with h5py.File(path, "r") as handle:
        group = handle.get("distance_to_image_plane_png", handle)
        for key in group:
            frame = frame_of_key(key)
            if frame is not None:
                frames.append(frame)
    return sorted(frames)
