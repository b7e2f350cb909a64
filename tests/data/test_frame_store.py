"""The per-camera HDF5 frame store: layout, round trip, selection, resize, atomicity, errors, determinism."""

import errno
import pickle
import time

import h5py
import numpy as np
import pytest
from factories import make_scene

from visionops.data import camera_conversion as cc
from visionops.data.camera_conversion import CameraConversionStats, convert_camera
from visionops.data.depth import DepthWriter
from visionops.data.frame_store import FrameStore, FrameStoreWriter, depth_store_key, rgb_key
from visionops.data.jpeg import decode_jpeg, encode_jpeg
from visionops.data.video import VideoDecodeError, VideoWriter, iter_frames

W, H, N = 320, 240, 8


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _natural_frames(width: int = W, height: int = H, count: int = N) -> list[np.ndarray]:
    """Camera-like frames: lit floor gradient, a few moving boxes and discs with soft edges, mild sensor noise.

    (make_scene's random-noise videos are the worst case for JPEG and say nothing about its quality.)
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    rng = np.random.default_rng(3)
    frames = []
    for i in range(count):
        img = np.stack([60 + 120 * yy / height + 20 * np.sin(xx / 40.0)] * 3, -1) * [1.0, 0.95, 0.85]
        box = (np.abs(xx - (80 + 6 * i)) < 30) & (np.abs(yy - 120) < 50)
        img[box] = [200, 120, 40]
        disc = (xx - (220 - 5 * i)) ** 2 + (yy - (90 + 3 * i)) ** 2 < 35**2
        img[disc] = [40, 90, 180] + 30 * np.sin(xx[disc] / 6.0)[:, None]
        img = img + rng.normal(0, 2.0, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def _depth_maps(count: int = N, height: int = H, width: int = W) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(11)
    base = (np.add.outer(np.arange(height), np.arange(width)) * 40 + 2000).astype(np.uint16)
    return {f: base + rng.integers(0, 50, (height, width), dtype=np.uint16) for f in range(count)}


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
    """(video path, depth path, depth maps) of a smooth 320x240, 8-frame camera."""
    folder = tmp_path_factory.mktemp("natural")
    video_path, depth_path = folder / "Camera_0000.mp4", folder / "Camera_0000.h5"
    with VideoWriter(video_path, W, H, fps=30) as writer:
        for rgb in _natural_frames():
            writer.write(rgb)
    depth = _depth_maps()
    with DepthWriter(depth_path) as writer:  # the raw layout: root datasets, gzip 1 + shuffle, one chunk
        for frame, mm in depth.items():
            writer.write(frame, mm)
    return video_path, depth_path, depth


@pytest.fixture(scope="module")
def ten_frames(tmp_path_factory):
    """A make_scene camera with 10 frames (noise video, constant depth)."""
    scene = make_scene(tmp_path_factory.mktemp("ten") / "Warehouse_000", cameras=("Camera",), frames=10)
    return scene / "videos" / "Camera.mp4", scene / "depth_maps" / "Camera.h5"


def test_round_trip_quality_and_exact_depth(natural, tmp_path):
    video_path, depth_path, depth = natural
    out = tmp_path / "frames" / "Warehouse_000" / "Camera_0000.h5"
    reported = []
    stats = convert_camera(video_path, out, depth_path=depth_path, scene="Warehouse_000", progress=reported.append)
    assert isinstance(stats, CameraConversionStats)
    assert (stats.camera_id, stats.frames, stats.truncated_at, stats.frame_ids) == ("Camera_0000", N, None,
                                                                                     list(range(N)))
    assert stats.bytes == out.stat().st_size and sum(reported) == N
    for phase in ("decode", "resize", "encode", "write", "depth"):
        assert getattr(stats, f"{phase}_seconds") >= 0
    decoded = dict(iter_frames(video_path))
    with FrameStore(out) as store:
        assert store.frames == list(range(N)) and store.has_depth and len(store) == N
        for frame in store.frames:
            rgb = store.rgb(frame)
            assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
            assert _psnr(rgb, decoded[frame]) >= 35.0
            np.testing.assert_array_equal(store.depth_mm(frame), depth[frame])
            assert store.jpeg(frame)[:2] == b"\xff\xd8"  # a complete JPEG file
    with h5py.File(out, "r") as handle:
        assert sorted(handle) == ["distance_to_image_plane_png", "rgb"]
        jpeg = handle[rgb_key(3)]
        assert jpeg.dtype == np.uint8 and jpeg.ndim == 1 and jpeg.chunks == jpeg.shape and jpeg.compression is None
        dmap = handle[depth_store_key(3)]
        assert (dmap.dtype, dmap.shape, dmap.chunks) == (np.uint16, (H, W), (H, W))
        assert (dmap.compression, dmap.compression_opts, dmap.shuffle) == ("gzip", 1, True)


@pytest.mark.parametrize("layout", ["group", "uncompressed", "gzip9"])
def test_depth_layouts_of_the_raw_file(natural, tmp_path, layout):
    """Raw depth in the group, or with other filters: copied exactly, stored as gzip + shuffle."""
    video_path, _, depth = natural
    raw = tmp_path / "depth.h5"
    with h5py.File(raw, "w") as handle:
        for frame, mm in depth.items():
            name = f"distance_to_image_plane_{frame:05d}.png"
            if layout == "group":
                handle.create_dataset(f"distance_to_image_plane_png/{name}", data=mm, chunks=mm.shape,
                                      compression="gzip", shuffle=True)
            elif layout == "uncompressed":
                handle.create_dataset(name, data=mm)
            else:
                handle.create_dataset(name, data=mm, chunks=(60, 80), compression="gzip", compression_opts=9)
    out = tmp_path / "Camera_0000.h5"
    convert_camera(video_path, out, depth_path=raw, step=3)
    with FrameStore(out) as store, h5py.File(out, "r") as handle:
        assert store.frames == [0, 3, 6]
        for frame in store.frames:
            np.testing.assert_array_equal(store.depth_mm(frame), depth[frame])
            dmap = handle[depth_store_key(frame)]
            assert (dmap.compression, dmap.shuffle, dmap.chunks) == ("gzip", True, (H, W))


def test_step_max_frames_and_frame_ids_select_source_indices(ten_frames, tmp_path):
    video_path, depth_path = ten_frames
    cases = [
        (dict(step=3), [0, 3, 6, 9], 3),
        (dict(step=3, max_frames=7), [0, 3, 6], 3),
        (dict(max_frames=4), [0, 1, 2, 3], 1),
        (dict(frame_ids=[8, 2, 5, 5]), [2, 5, 8], 0),
        (dict(frame_ids=[0, 4, 8], step=7), [0, 4, 8], 4),  # frame_ids win over step
    ]
    for i, (kwargs, expected, frame_step) in enumerate(cases):
        out = tmp_path / f"{i}.h5"
        stats = convert_camera(video_path, out, depth_path=depth_path, **kwargs)
        assert stats.frame_ids == expected and stats.truncated_at is None, kwargs
        with h5py.File(out, "r") as handle:
            assert sorted(handle["rgb"]) == [f"rgb_{f:05d}.jpg" for f in expected]
            assert sorted(handle["distance_to_image_plane_png"]) == [
                f"distance_to_image_plane_{f:05d}.png" for f in expected]
            assert list(handle.attrs["frames"]) == expected and handle.attrs["frames"].dtype == np.int64
            assert handle.attrs["frame_step"] == frame_step
    assert rgb_key(42) == "rgb/rgb_00042.jpg"
    assert depth_store_key(42) == "distance_to_image_plane_png/distance_to_image_plane_00042.png"


def test_resize_frames_area_and_depth_nearest(natural, tmp_path):
    video_path, depth_path, depth = natural
    out = tmp_path / "small.h5"
    stats = convert_camera(video_path, out, depth_path=depth_path, size=(160, 120), max_frames=2)
    assert stats.resize_seconds > 0
    decoded = dict(iter_frames(video_path, stop=2))
    with FrameStore(out) as store:
        assert store.size == (160, 120)
        attrs = store.attrs
        assert (attrs["width"], attrs["height"], attrs["source_width"], attrs["source_height"]) == (160, 120, W, H)
        for frame in store.frames:
            rgb = store.rgb(frame)
            assert rgb.shape == (120, 160, 3)
            # area-averaged 2x2 blocks of the decoded frame, up to JPEG error
            blocks = decoded[frame].reshape(120, 2, 160, 2, 3).mean(axis=(1, 3))
            assert _psnr(rgb, blocks) >= 35.0
            # nearest neighbour, pixel-centre aligned: output (y, x) <- input (2y + 1, 2x + 1); no new values
            np.testing.assert_array_equal(store.depth_mm(frame), depth[frame][1::2, 1::2])
    up = tmp_path / "large.h5"
    convert_camera(video_path, up, depth_path=depth_path, size=(480, 360), max_frames=1)
    with FrameStore(up) as store:
        assert store.rgb(0).shape == (360, 480, 3)
        assert set(np.unique(store.depth_mm(0))) <= set(np.unique(depth[0]))


def test_attributes(natural, tmp_path):
    video_path, depth_path, _ = natural
    out = tmp_path / "Camera_0000.h5"
    convert_camera(video_path, out, depth_path=depth_path, step=2, jpeg_quality=90, scene="Warehouse_017",
                   camera_id="Camera_0000")
    attrs = FrameStore(out).attrs
    assert attrs == {
        "visionops_format": "frame_store/v1", "camera_id": "Camera_0000", "scene": "Warehouse_017",
        "source_video": str(video_path), "source_fps": 30.0, "frame_step": 2, "width": W, "height": H,
        "source_width": W, "source_height": H, "jpeg_quality": 90, "frames": attrs["frames"], "has_depth": True,
    }
    assert list(attrs["frames"]) == [0, 2, 4, 6]
    no_depth = tmp_path / "no_depth.h5"
    convert_camera(video_path, no_depth, max_frames=1)
    with h5py.File(no_depth, "r") as handle:
        assert sorted(handle) == ["rgb"] and not handle.attrs["has_depth"]


def test_reader_errors_name_file_and_dataset(natural, tmp_path):
    video_path, _, _ = natural
    out = tmp_path / "Camera_0000.h5"
    convert_camera(video_path, out, frame_ids=[0, 2])
    store = FrameStore(out)  # without ``with``
    assert 2 in store and 1 not in store
    with pytest.raises(KeyError, match=r"Camera_0000\.h5.*rgb/rgb_00001\.jpg"):
        store.jpeg(1)
    with pytest.raises(KeyError, match=r"distance_to_image_plane_00002\.png.*has no depth"):
        store.depth_mm(2)
    copy = pickle.loads(pickle.dumps(store))  # DataLoader workers (spawn) get the path only
    assert copy.jpeg(2) == store.jpeg(2)
    store.close()
    copy.close()
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        FrameStore(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["x"] = 1
    with pytest.raises(ValueError, match="not a frame store"):
        _ = FrameStore(other).frames


def test_writer_keeps_the_old_file_when_interrupted(natural, tmp_path):
    video_path, _, _ = natural
    out = tmp_path / "Camera_0000.h5"
    convert_camera(video_path, out, max_frames=2)
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"), FrameStoreWriter(out, width=W, height=H) as writer:
        writer.write_rgb(0, encode_jpeg(np.zeros((H, W, 3), np.uint8), 95))
        raise RuntimeError("interrupted")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["Camera_0000.h5"]  # no .tmp-* left
    writer = FrameStoreWriter(tmp_path / "aborted.h5", width=W, height=H)
    writer.write_rgb(0, b"\xff\xd8\xff\xd9")
    writer.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["Camera_0000.h5"]


def test_writer_checks_depth_matches_jpegs(tmp_path):
    with pytest.raises(ValueError, match=r"no depth for \[1\]"), FrameStoreWriter(tmp_path / "x.h5", width=4,
                                                                                   height=2) as writer:
        writer.write_rgb(0, b"\xff\xd8\xff\xd9")
        writer.write_rgb(1, b"\xff\xd8\xff\xd9")
        writer.write_depth(0, np.zeros((2, 4), np.uint16))
    with pytest.raises(ValueError, match=r"\(2, 4\) uint16"), FrameStoreWriter(tmp_path / "x.h5", width=4,
                                                                                height=2) as writer:
        writer.write_depth(0, np.zeros((2, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_disk_full_names_the_file_and_leaves_nothing(natural, tmp_path, monkeypatch):
    video_path, depth_path, _ = natural
    calls = 0
    real_create = FrameStoreWriter._create

    def create(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_create(self, *args, **kwargs)

    monkeypatch.setattr(FrameStoreWriter, "_create", create)
    folder = tmp_path / "frames" / "Warehouse_000"
    out = folder / "Camera_0000.h5"
    with pytest.raises(OSError, match="free disk space") as info:
        convert_camera(video_path, out, depth_path=depth_path)
    assert info.value.errno == errno.ENOSPC
    assert str(out) in str(info.value) and "re-run" in str(info.value)
    assert list(folder.iterdir()) == []  # neither the .h5 nor its temporary file


def test_short_video_sets_truncated_at(ten_frames, tmp_path):
    video_path, depth_path = ten_frames
    stats = convert_camera(video_path, tmp_path / "a.h5", depth_path=depth_path, step=4, max_frames=20)
    assert (stats.frame_ids, stats.truncated_at) == ([0, 4, 8], 12)
    stats = convert_camera(video_path, tmp_path / "b.h5", frame_ids=[1, 9, 15, 30])
    assert (stats.frame_ids, stats.truncated_at) == ([1, 9], 15)
    assert FrameStore(tmp_path / "b.h5").frames == [1, 9]
    stats = convert_camera(video_path, tmp_path / "c.h5", step=4, max_frames=10)  # 0, 4, 8 all exist
    assert stats.truncated_at is None


def test_missing_depth_frame_is_an_error(ten_frames, tmp_path):
    video_path, _ = ten_frames
    depth_path = tmp_path / "depth.h5"
    with DepthWriter(depth_path) as writer:
        for frame in (0, 1, 3):
            writer.write(frame, np.ones((48, 64), np.uint16))
    out_dir = tmp_path / "out"
    with pytest.raises(KeyError, match=r"depth\.h5.*frame 2"):
        convert_camera(video_path, out_dir / "Camera.h5", depth_path=depth_path, max_frames=4)
    assert list(out_dir.iterdir()) == []


def test_damaged_video_propagates_and_leaves_nothing(natural, tmp_path):
    video_path, _, _ = natural
    broken = tmp_path / "Camera_0000.mp4"
    data = video_path.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(VideoDecodeError) as info:
        convert_camera(broken, out_dir / "Camera_0000.h5")
    assert info.value.path == broken and info.value.frame == 0
    assert list(out_dir.iterdir()) == []


def test_conversion_is_byte_identical(natural, tmp_path):
    video_path, depth_path, _ = natural
    first, second = tmp_path / "a" / "Camera_0000.h5", tmp_path / "b" / "Camera_0000.h5"
    convert_camera(video_path, first, depth_path=depth_path, scene="S")
    time.sleep(1.1)  # HDF5 timestamps have 1 s resolution: any left in the file would now differ
    convert_camera(video_path, second, depth_path=depth_path, scene="S")
    assert first.read_bytes() == second.read_bytes()
    convert_camera(video_path, first, depth_path=depth_path, scene="S", size=(160, 120))  # replaces the file
    assert FrameStore(first).size == (160, 120)


def test_long_video_frames_attribute(tmp_path):
    # 9000 frames (5 min at 30 fps) need 72 KB for ``frames``: above HDF5's 64 KB compact attribute limit.
    frames = range(0, 9000)
    with FrameStoreWriter(tmp_path / "long.h5", width=2, height=2) as writer:
        for frame in frames:
            writer.write_rgb(frame, b"\xff\xd8\xff\xd9")
    assert FrameStore(tmp_path / "long.h5").frames == list(frames)


def test_jpeg_helpers(natural):
    rgb = _natural_frames(count=1)[0]
    data = encode_jpeg(rgb, 95)
    assert data == encode_jpeg(rgb, 95)  # deterministic
    assert len(encode_jpeg(rgb, 50)) < len(data)
    back = decode_jpeg(data)
    assert back.shape == rgb.shape and _psnr(back, rgb) >= 35.0
    np.testing.assert_array_equal(decode_jpeg(np.frombuffer(data, np.uint8)), back)
    # RGB order is kept (a BGR mix-up would swap the orange box's red and blue)
    assert back[120, 80, 0] > back[120, 80, 2] + 100
    with pytest.raises(ValueError, match="uint8"):
        encode_jpeg(rgb.astype(np.float32), 95)
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(rgb, 0)
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        decode_jpeg(b"not a jpeg")


def test_resize_nearest_is_centre_aligned():
    image = np.arange(16, dtype=np.uint16).reshape(4, 4)
    np.testing.assert_array_equal(cc.resize_nearest(image, (2, 2)), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(cc.resize_nearest(image, (8, 8))[::2, ::2], image)
    assert cc.resize_nearest(image, (4, 4)) is image
