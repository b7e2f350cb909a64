"""Frame sources: raw scene vs converted OVPKL inputs, projection geometry, errors, short videos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from visionops.data.raw import RawScene
from visionops.data.sparse4d_dataset import IMAGENET_MEAN, IMAGENET_STD
from visionops.data.video import VideoWriter
from visionops.inference.frames import frames_from_ovpkl, frames_from_raw_scene

SIZE = (96, 64)  # network input (W, H); the scene's videos are 64x48, so this is an anisotropic upscale


def test_raw_and_ovpkl_sources_give_the_same_inputs(converted_scene):
    scene, root, pkl = converted_scene
    raw = list(frames_from_raw_scene(scene, SIZE))
    ovp = list(frames_from_ovpkl(pkl, root, SIZE))
    assert [f.frame_id for f in raw] == [f.frame_id for f in ovp] == [0, 1, 2, 3]
    for a, b in zip(raw, ovp, strict=True):
        assert a.cameras == b.cameras == ["Camera_0000", "Camera_0001"]
        assert a.scene_name == b.scene_name == "Warehouse_000+bev-sensor-all"
        assert a.timestamp == pytest.approx(b.timestamp) and a.timestamp == pytest.approx(a.frame_id / 30)
        np.testing.assert_allclose(a.bev_origin, b.bev_origin, atol=1e-9)
        np.testing.assert_allclose(a.projection_mat, b.projection_mat, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.focal, b.focal, rtol=1e-6)
        assert a.images.shape == b.images.shape == (2, 3, SIZE[1], SIZE[0]) and a.images.dtype == np.float32
        np.testing.assert_array_equal(a.image_wh, [SIZE, SIZE])
        # Same pixels up to the frame store's JPEG (q95) re-encoding, in normalised units.
        # (noise frames are JPEG's worst case, hence the loose mean and the correlation check).
        assert np.abs(a.images - b.images).mean() < 0.25
        assert np.corrcoef(a.images.ravel(), b.images.ravel())[0, 1] > 0.95


def test_projection_maps_bev_points_onto_the_resized_image(converted_scene):
    scene, _, _ = converted_scene
    frame = next(frames_from_raw_scene(scene, SIZE))
    calibration = RawScene(scene).calibration
    world = np.array([[0.3, -0.2, 0.9], [1.0, 1.0, 0.0]])
    for k, cam in enumerate(frame.cameras):
        uv, depth = calibration.camera(cam).project(world)
        # training's un-augmented preparation: x1.5 covers 96x64 (64x48 -> 96x72), the top 8 rows are cropped
        expected = (uv + 0.5) * 1.5 - 0.5 - np.array([0.0, 8.0])
        bev = np.concatenate([world - frame.bev_origin, np.ones((2, 1))], axis=1)
        hom = bev @ frame.projection_mat[k].T
        np.testing.assert_allclose(hom[:, 2], depth, rtol=1e-9)
        np.testing.assert_allclose(hom[:, :2] / hom[:, 2:3], expected, atol=1e-6)


def test_images_are_imagenet_normalised_rgb(converted_scene):
    scene, _, _ = converted_scene
    frame = next(frames_from_raw_scene(scene, (64, 48)))  # the video's own size: no resize
    rgb = RawScene(scene).frames("Camera_0000", stop=1)
    _, first = next(rgb)
    rgb.close()
    expected = ((first / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(frame.images[0], expected, atol=1e-5)


def test_frame_step_and_max_frames(converted_scene):
    scene, root, pkl = converted_scene
    assert [f.frame_id for f in frames_from_raw_scene(scene, SIZE, frame_step=2)] == [0, 2]
    assert [f.frame_id for f in frames_from_raw_scene(scene, SIZE, max_frames=3)] == [0, 1, 2]
    assert [f.frame_id for f in frames_from_ovpkl(pkl, root, SIZE, max_frames=2)] == [0, 1]
    one = list(frames_from_raw_scene(scene, SIZE, cameras=["Camera_0001"]))
    assert one[0].cameras == ["Camera_0001"] and one[0].images.shape[0] == 1


def test_missing_calibration_is_named(tiny_scene):
    (tiny_scene / "calibration.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"calibration\.json"):
        next(frames_from_raw_scene(tiny_scene, SIZE))


def test_nan_in_calibration_names_file_and_camera(tiny_scene):
    path = tiny_scene / "calibration.json"
    data = json.loads(path.read_text())
    data["sensors"][1]["intrinsicMatrix"][0][0] = float("nan")
    path.write_text(json.dumps(data))  # json writes the NaN literal, which json.load accepts
    with pytest.raises(ValueError, match=r"calibration\.json.*Camera_0001.*intrinsicMatrix.*non-finite"):
        next(frames_from_raw_scene(tiny_scene, SIZE))


def test_missing_video_and_unknown_camera(tiny_scene):
    with pytest.raises(FileNotFoundError, match=r"Camera_0009\.mp4"):
        next(frames_from_raw_scene(tiny_scene, SIZE, cameras=["Camera_0009"]))
    (tiny_scene / "videos" / "Camera_0000.mp4").rename(tiny_scene / "videos" / "Camera_0042.mp4")
    with pytest.raises(ValueError, match=r"no sensor for camera 'Camera_0042'"):
        next(frames_from_raw_scene(tiny_scene, SIZE))
    for video in (tiny_scene / "videos").glob("*.mp4"):
        video.unlink()
    with pytest.raises(FileNotFoundError, match="no \\*.mp4"):
        next(frames_from_raw_scene(tiny_scene, SIZE))


def test_camera_whose_video_ends_early_is_dropped_or_stops_the_stream(tiny_scene):
    with VideoWriter(tiny_scene / "videos" / "Camera_0001.mp4", 64, 48, 30.0) as writer:
        for _ in range(2):
            writer.write(np.zeros((48, 64, 3), dtype=np.uint8))
    with pytest.warns(UserWarning, match=r"videos of \['Camera_0001'\] ended before frame 2.*dropping camera"):
        frames = list(frames_from_raw_scene(tiny_scene, SIZE))
    assert [f.frame_id for f in frames] == [0, 1, 2, 3]
    assert [len(f.cameras) for f in frames] == [2, 2, 1, 1]
    assert frames[2].cameras == ["Camera_0000"] and frames[2].projection_mat.shape == (1, 4, 4)
    with pytest.warns(UserWarning, match="stopping the stream"):
        stopped = list(frames_from_raw_scene(tiny_scene, SIZE, on_short_video="stop"))
    assert [f.frame_id for f in stopped] == [0, 1]
