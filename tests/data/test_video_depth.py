import numpy as np
import pytest

from visionops.data import depth, video


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def test_h264_round_trip_is_frame_exact_and_high_quality(tmp_path):
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    # Moving, luminance-dominant content with a mild tint, like camera images: 4:2:0 chroma subsampling
    # (what real MTMC videos use) cannot hold saturated colour stripes, whatever the encoder.
    luma = [127 + 90 * np.sin(xx / 9.0 + i) * np.cos(yy / 7.0 - 0.5 * i) for i in range(6)]
    frames = [np.stack([lum, 0.9 * lum + 10, 0.75 * lum + 20], -1).astype(np.uint8) for lum in luma]
    path = tmp_path / "cam.mp4"
    with video.VideoWriter(path, w, h, fps=30) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.codec == "libx264"
    info = video.probe(path)
    assert (info["width"], info["height"], info["codec"]) == (w, h, "h264")
    assert info["fps"] == pytest.approx(30.0)
    assert video.count_frames(path) == 6 == video.count_frames(path, exact=True)
    decoded = dict(video.iter_frames(path))
    assert sorted(decoded) == list(range(6))
    for i, frame in enumerate(frames):
        assert _psnr(decoded[i], frame) > 35
    # frame 3 decoded alone is frame 3, not a neighbour
    third = video.read_frame(path, 3)
    assert _psnr(third, frames[3]) > _psnr(third, frames[2]) + 5
    with pytest.raises(IndexError, match="frame 9"):
        video.read_frame(path, 9)


def test_writer_rejects_wrong_shapes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        video.VideoWriter(tmp_path / "x.mp4", 63, 48)
    with video.VideoWriter(tmp_path / "y.mp4", 64, 48) as writer, pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros((48, 64, 3), np.float32))


def test_depth_round_trip_in_millimetres(tmp_path):
    metres = np.array([[0.0, 1.2345], [70.0, np.nan]])
    mm = depth.metres_to_mm(metres)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, [[0, 1234], [65535, 0]])
    path = tmp_path / "Camera.h5"
    with depth.DepthWriter(path) as writer:
        writer.write(0, mm)
        writer.write(7, mm + 1)
    assert depth.list_depth_frames(path) == [0, 7]
    np.testing.assert_array_equal(depth.read_depth_mm(path, 7), mm + 1)
    assert depth.depth_key(7) == "distance_to_image_plane_00007.png"
    with pytest.raises(KeyError, match="distance_to_image_plane_00003.png"):
        depth.read_depth_mm(path, 3)
