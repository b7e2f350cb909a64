"""HDF5 frame store: one file per camera with its JPEG frames and depth maps, as TAO Sparse4D reads them.

Layout of ``data/frames/<Scene>/<cam>.h5`` (the paths the OVPKL info files of the TAO Sparse4D model card
point into)::

    rgb/rgb_%05d.jpg                                                 1-D uint8: a complete JPEG file
    distance_to_image_plane_png/distance_to_image_plane_%05d.png     2-D uint16 z-depth in millimetres

``%05d`` is the 0-based **source** frame index, i.e. the frame id of ``ground_truth.json``, also when frames
are subsampled (frames 0, 5, 10... keep their own numbers). JPEG datasets are chunked (one chunk per frame)
without an HDF5 filter: JPEG is already compressed. Depth datasets use the raw depth files' representation:
uint16 mm, gzip + shuffle, one chunk per frame (gzip level 1 when re-encoded; when the raw file already
uses gzip + shuffle with one chunk per frame and no resize is asked for, the compressed chunks are copied
verbatim, keeping their level: 0.3-0.6 ms per 960x540 frame instead of ~17 ms to inflate and deflate again).

Depth is **copied** into the store rather than referenced in the raw ``depth_maps/<cam>.h5`` so that one
file per camera holds everything a training sample needs, and the raw depth may be absent on the machine
that trains. When frames are resized, depth is resized with nearest neighbour: z-depth values do not change
with the image scale, and interpolating across an object's edge would invent depths that exist nowhere.

File attributes: ``visionops_format`` (``frame_store/v1``), ``camera_id``, ``scene``, ``source_video``,
``source_fps``, ``frame_step`` (0 = an irregular list of frames), ``width``/``height`` (stored size),
``source_width``/``source_height``, ``jpeg_quality``, ``frames`` (int64 array of the stored source frame
indices), ``has_depth``.

Files are written with HDF5 1.8 format features at most (``libver=("v108", "v108")``): readable by any
HDF5 >= 1.8, and able to hold the ``frames`` attribute of long videos (above 64 KiB, i.e. 8192 frames, an
attribute needs the 1.8 dense attribute storage). Datasets are created with ``track_times=False``, so that
converting the same input twice gives byte-identical files (DVC caches by content).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import numpy as np

from visionops import atomic
from visionops.data.jpeg import decode_jpeg

FORMAT = "frame_store/v1"
RGB_GROUP = "rgb"
DEPTH_GROUP = "distance_to_image_plane_png"
RGB_KEY_FORMAT = "rgb/rgb_{:05d}.jpg"
DEPTH_KEY_FORMAT = "distance_to_image_plane_png/distance_to_image_plane_{:05d}.png"
_LIBVER = ("v108", "v108")
_DEPTH_GZIP_LEVEL = 1



def rgb_key(frame: int) -> str:
    """Dataset name of source frame ``frame``'s JPEG: ``rgb/rgb_00042.jpg``."""
    return RGB_KEY_FORMAT.format(frame)


def depth_store_key(frame: int) -> str:
    """Dataset name of source frame ``frame``'s depth in the store (with its group, unlike the raw files)."""
    return DEPTH_KEY_FORMAT.format(frame)


# --------------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------------


def _disk_error(path: Path, exc: OSError) -> OSError:
    """The OSError of a failed write, restated with the file and the fix."""
    full = exc.errno == errno.ENOSPC or "No space left" in str(exc)
    cause = "the disk is full" if full else str(exc)
    message = (f"{path}: cannot write the frame store ({cause}); free disk space (or fix the output folder's "
               "permissions) and re-run the conversion")
    return OSError(exc.errno, message) if exc.errno is not None else OSError(message)


class FrameStoreWriter:
    """Write one camera's frame store; a context manager, one writer per file.

    The file is written as a temporary sibling (``.tmp-<name>...``) and renamed to ``path`` by a clean
    :meth:`close`; leaving the ``with`` block with an exception (or calling :meth:`abort`) deletes the temporary
    file and leaves a previous file at ``path`` untouched. OSErrors while writing (a full disk...) are
    re-raised naming ``path`` and the fix.

    Args:
        path: the ``.h5`` to create.
        width, height: stored frame size in pixels; depth maps must have this shape.
        camera_id, scene, source_video, source_fps, source_width, source_height, frame_step, jpeg_quality:
            provenance, stored as file attributes (see the module docstring).
    """

    def __init__(self, path: str | os.PathLike, *, width: int, height: int, camera_id: str | None = None,
                 scene: str = "", source_video: str | os.PathLike = "", source_fps: float = 0.0,
                 source_width: int | None = None, source_height: int | None = None, frame_step: int = 1,
                 jpeg_quality: int = 95) -> None:
        import h5py  # noqa: PLC0415

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self._attrs = {
            "visionops_format": FORMAT,
            "camera_id": camera_id if camera_id is not None else self.path.stem,
            "scene": scene,
            "source_video": str(source_video),
            "source_fps": float(source_fps or 0.0),
            "frame_step": int(frame_step),
            "width": self.width,
            "height": self.height,
            "source_width": int(source_width if source_width is not None else width),
            "source_height": int(source_height if source_height is not None else height),
            "jpeg_quality": int(jpeg_quality),
        }
        self._rgb_frames: set[int] = set()
        self._depth_frames: set[int] = set()
        self._dcpls: dict = {}
        self._atomic = atomic.atomic_path(self.path)
        try:
            self._tmp = self._atomic.__enter__()
            self._file = h5py.File(self._tmp, "w", libver=_LIBVER)
            self._file.create_group(RGB_GROUP)
        except BaseException as exc:
            self._file = None
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OSError):
                raise _disk_error(self.path, exc) from exc
            raise

    @property
    def frames(self) -> list[int]:
        """Source frame indices whose JPEG was written so far, ascending."""
        return sorted(self._rgb_frames)

    # Datasets are made with h5py's low-level API and written as whole chunks: the high-level create_dataset
    # cost ~0.3 ms per dataset in Python bookkeeping, more than writing the JPEG itself (0.13 ms this way).
    def _dcpl(self, chunks: tuple[int, ...], gzip_level: int | None = None):
        """Dataset creation properties: one chunk of ``chunks``, [shuffle, gzip] if ``gzip_level``, no times.

        The property lists are reused (HDF5 copies them into each dataset): every JPEG has its own size, so
        theirs is one list re-chunked each time; creating a list costs as much as writing a JPEG.
        """
        from h5py import h5p  # noqa: PLC0415

        key = None if gzip_level is None else (chunks, gzip_level)
        dcpl = self._dcpls.get(key)
        if dcpl is None:
            dcpl = h5p.create(h5p.DATASET_CREATE)
            dcpl.set_chunk(chunks)
            if gzip_level is not None:  # h5py's order for compression="gzip", shuffle=True: shuffle, then deflate
                dcpl.set_shuffle()
                dcpl.set_deflate(gzip_level)
            dcpl.set_obj_track_times(False)  # no timestamps: converting twice gives identical bytes
            self._dcpls[key] = dcpl
        elif gzip_level is None:
            dcpl.set_chunk(chunks)
        return dcpl

    def _create(self, key: str, shape: tuple[int, ...], dtype: str, dcpl):
        """Create the empty dataset ``key`` (its group exists); the hook the disk-full test patches."""
        from h5py import h5d, h5s, h5t  # noqa: PLC0415

        type_id = h5t.STD_U8LE if dtype == "u1" else h5t.STD_U16LE
        return h5d.create(self._file.id, key.encode(), type_id, h5s.create_simple(shape), dcpl=dcpl)

    def _check_open(self) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: the frame store writer is closed")

    def _depth_group(self) -> None:
        if not self._depth_frames and DEPTH_GROUP not in self._file:
            self._file.create_group(DEPTH_GROUP)

    def write_rgb(self, frame: int, jpeg: bytes | np.ndarray) -> None:
        """Store the JPEG file bytes of source frame ``frame`` (as written by :func:`encode_jpeg`)."""
        self._check_open()
        frame = frame_index(frame)
        data = jpeg if isinstance(jpeg, np.ndarray) else np.frombuffer(jpeg, dtype=np.uint8)
        if data.dtype != np.uint8 or data.ndim != 1 or not data.size:
            raise ValueError(f"frame {frame}: expected non-empty JPEG bytes, got {data.shape} {data.dtype}")
        if frame in self._rgb_frames:
            raise ValueError(f"{self.path}: JPEG of frame {frame} written twice")
        try:
            dataset = self._create(rgb_key(frame), data.shape, "u1", self._dcpl(data.shape))
            dataset.write_direct_chunk((0,), np.ascontiguousarray(data))
        except OSError as exc:
            raise _disk_error(self.path, exc) from exc
        self._rgb_frames.add(frame)

    def _check_depth(self, frame: int) -> tuple[int, int]:
        self._check_open()
        if frame in self._depth_frames:
            raise ValueError(f"{self.path}: depth of frame {frame} written twice")
        return self.height, self.width

    def write_depth(self, frame: int, depth_mm: np.ndarray) -> None:
        """Store the (height, width) uint16 millimetre depth of source frame ``frame`` (gzip 1 + shuffle)."""
        frame = frame_index(frame)
        shape = self._check_depth(frame)
        if depth_mm.dtype != np.uint16 or depth_mm.shape != shape:
            raise ValueError(f"frame {frame}: depth must be {shape} uint16 millimetres, "
                             f"got {depth_mm.shape} {depth_mm.dtype}")
        from h5py import h5s  # noqa: PLC0415

        try:
            self._depth_group()
            dataset = self._create(depth_store_key(frame), shape, "u2", self._dcpl(shape, _DEPTH_GZIP_LEVEL))
            dataset.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(depth_mm, dtype="<u2"))
        except OSError as exc:
            raise _disk_error(self.path, exc) from exc
        self._depth_frames.add(frame)

    def write_depth_chunk(self, frame: int, chunk: bytes, *, level: int, filter_mask: int = 0) -> None:
        """Store depth given as an already compressed chunk: the bytes of a (height, width) little-endian uint16
        dataset with the filters [shuffle, gzip ``level``] and one chunk per frame, as
        ``h5py.Dataset.id.read_direct_chunk`` returns them (``filter_mask`` included). Nothing is decompressed."""
        frame = frame_index(frame)
        shape = self._check_depth(frame)
        try:
            self._depth_group()
            dataset = self._create(depth_store_key(frame), shape, "u2", self._dcpl(shape, int(level)))
            dataset.write_direct_chunk((0, 0), chunk, filter_mask)
        except OSError as exc:
            raise _disk_error(self.path, exc) from exc
        self._depth_frames.add(frame)

    def close(self) -> None:
        """Write the attributes, close the file and rename it into place. No-op when already closed."""
        if self._file is None:
            return
        try:
            missing = sorted(self._rgb_frames - self._depth_frames) if self._depth_frames else []
            extra = sorted(self._depth_frames - self._rgb_frames)
            if missing or extra:
                raise ValueError(f"{self.path}: depth and JPEG frames differ: no depth for {missing[:5]}"
                                 f"{'...' if len(missing) > 5 else ''}, depth without JPEG for {extra[:5]}")
            attrs = dict(self._attrs, frames=np.asarray(sorted(self._rgb_frames), dtype=np.int64),
                         has_depth=bool(self._depth_frames))
            for name, value in attrs.items():
                self._file.attrs[name] = value
            handle, self._file = self._file, None
            handle.close()
            atomic_cm, self._atomic = self._atomic, None
            atomic_cm.__exit__(None, None, None)  # renames; on failure it deletes the temporary file itself
        except BaseException as exc:
            self._discard(exc)
            if isinstance(exc, OSError):
                raise _disk_error(self.path, exc) from exc
            raise

    def abort(self) -> None:
        """Close and delete the temporary file; ``path`` keeps whatever it held before."""
        self._discard(_Aborted())

    def _discard(self, exc: BaseException) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):  # a failing close must not hide the error being reported
                self._file.close()
            self._file = None
        if self._atomic is not None:
            atomic_cm, self._atomic = self._atomic, None
            atomic_cm.__exit__(type(exc), exc, exc.__traceback__)  # deletes the temporary file

    def __enter__(self) -> FrameStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self._discard(exc)


class _Aborted(Exception):
    """Stands for "no real error" when a writer is abandoned on purpose."""


def frame_index(frame: int) -> int:
    frame = int(frame)
    if frame < 0:
        raise ValueError(f"frame indices are 0-based, got {frame}")
    return frame


# --------------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------------


class FrameStore:
    """Read one camera's frame store; a context manager, also usable without ``with``.

    The HDF5 file is opened on first use and again in a forked child process (a DataLoader worker), since an
    HDF5 handle must not be shared across ``fork``; a pickled FrameStore (``spawn`` workers) carries only its
    path. Missing datasets raise KeyError naming the file and the dataset.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"frame store {self.path} does not exist; run the frame conversion first")
        self._handle = None
        self._pid: int | None = None
        self._inherited: list = []
        self._attrs: dict | None = None

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            import h5py  # noqa: PLC0415

            if self._handle is not None:
                # Opened by the parent before a fork: keep the object alive but never touch it here (closing
                # it would act on the parent's HDF5 state copied into this process).
                self._inherited.append(self._handle)
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
            found = self._handle.attrs.get("visionops_format")
            found = found.decode() if isinstance(found, bytes) else found
            if found != FORMAT:
                self.close()
                raise ValueError(f"{self.path}: not a frame store (visionops_format={found!r}, expected {FORMAT!r})")
        return self._handle

    @property
    def attrs(self) -> dict:
        """File attributes as Python values (``frames`` as an int64 array)."""
        if self._attrs is None:
            self._attrs = {name: _plain(value) for name, value in self._file().attrs.items()}
        return dict(self._attrs)

    @property
    def frames(self) -> list[int]:
        """Stored source frame indices, ascending."""
        return [int(f) for f in self.attrs["frames"]]

    @property
    def has_depth(self) -> bool:
        return bool(self.attrs["has_depth"])

    @property
    def size(self) -> tuple[int, int]:
        """Stored (width, height)."""
        attrs = self.attrs
        return int(attrs["width"]), int(attrs["height"])

    def __len__(self) -> int:
        return len(self.attrs["frames"])

    def __contains__(self, frame: int) -> bool:
        return rgb_key(int(frame)) in self._file()

    def _dataset(self, key: str, frame: int, what: str):
        dataset = self._file().get(key)
        if dataset is None:
            hint = " (this store has no depth)" if what == "depth" and not self.has_depth else ""
            raise KeyError(f"{self.path}: no dataset {key!r} ({what} of frame {frame}){hint}; "
                           f"{len(self)} frames stored")
        return dataset

    def jpeg(self, frame: int) -> bytes:
        """The JPEG file bytes of source frame ``frame``."""
        return self._dataset(rgb_key(frame), frame, "JPEG")[()].tobytes()

    def rgb(self, frame: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB of source frame ``frame``."""
        return decode_jpeg(self._dataset(rgb_key(frame), frame, "JPEG")[()])

    def depth_mm(self, frame: int) -> np.ndarray:
        """(height, width) uint16 z-depth in millimetres (0 = no measurement) of source frame ``frame``."""
        return self._dataset(depth_store_key(frame), frame, "depth")[()]

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"FrameStore({str(self.path)!r})"


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


