"""Rendered tiny scenes: the raw format read back through RawScene, and annotation geometry."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from shapely import wkt

from visionops.data.calibration import world_to_map_pixels
from visionops.data.depth import list_depth_frames
from visionops.data.raw import RawScene, find_scenes
from visionops.data.synthetic import VERSION, render_dataset, render_scene
from visionops.data.synthetic.annotate import BOX_EDGES
from visionops.data.video import count_frames, iter_frames, probe


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_scene_files_and_decoding(tiny_scene, tiny_params):
    folder, summary, spec = tiny_scene
    scene = RawScene(folder)
    ids = ["Camera_0000", "Camera_0001", "Camera_0002"]
    assert scene.camera_ids == ids and scene.has_depth and scene.has_ground_truth and scene.map_path.is_file()
    for cam in ids:
        info = probe(scene.video_path(cam))
        assert (info["width"], info["height"], info["codec"]) == (160, 96, "h264")
        assert info["fps"] == pytest.approx(30.0)
        frames = list(iter_frames(scene.video_path(cam)))
        assert len(frames) == tiny_params.frames == count_frames(scene.video_path(cam), exact=True)
        assert all(f.shape == (96, 160, 3) and f.dtype == np.uint8 for _, f in frames)
        assert frames[0][1].std() > 10  # not a blank image
        assert list_depth_frames(scene.depth_path(cam)) == list(range(tiny_params.frames))
        depth = scene.depth_m(cam, 3)
        assert depth.shape == (96, 160) and depth.min() > 0.1 and depth.max() < 65.0
    assert summary["frames"] == tiny_params.frames and summary["cameras"] == ids
    assert summary["bytes"] > 0 and summary["visible_boxes"] > 0
    assert sum(summary["objects"].values()) == sum(1 for t in spec.tracks if t.present.any())


def test_calibration_is_consistent(tiny_scene):
    folder, _, spec = tiny_scene
    calib = RawScene(folder).calibration
    raw = json.loads((folder / "calibration.json").read_text())
    assert raw["version"] == VERSION and raw["calibrationType"] == "cartesian"
    for sensor, cam in zip(calib.sensors, spec.cameras, strict=True):
        assert sensor.id == cam.id
        assert sensor.camera_matrix == pytest.approx(sensor.intrinsic @ sensor.extrinsic, abs=1e-6)
        assert sensor.extrinsic[:, :3] @ sensor.extrinsic[:, :3].T == pytest.approx(np.eye(3), abs=1e-8)
        assert sensor.position == pytest.approx(cam.position, abs=1e-6)
        assert 3.0 <= sensor.position[2] <= 6.0
        assert (sensor.width, sensor.height, sensor.fps) == (160, 96, 30.0)
        for key in ("direction", "direction3d", "fieldOfView", "fieldOfViewPolygon"):
            assert key in sensor.attributes
        footprint = wkt.loads(sensor.attributes["fieldOfViewPolygon"])
        assert footprint.area > 5.0
        # The ground-plane homography maps floor points like the camera matrix does.
        p = np.array([footprint.centroid.x, footprint.centroid.y])
        a = sensor.homography @ np.array([*p, 1.0])
        b = sensor.camera_matrix @ np.array([*p, 0.0, 1.0])
        assert a[:2] / a[2] == pytest.approx(b[:2] / b[2], abs=1e-6)


def test_map_matches_scale_and_translation(tiny_scene):
    folder, _, spec = tiny_scene
    calib = RawScene(folder).calibration
    image = np.asarray(Image.open(folder / "map.png").convert("RGB"))
    s0 = calib.sensors[0]
    assert all(s.scale_factor == s0.scale_factor for s in calib.sensors)
    corners = world_to_map_pixels(np.array([spec.layout.floor_min, spec.layout.floor_max]), s0.scale_factor,
                                  s0.translation_to_global, image.shape[0])
    assert np.all((corners >= 0) & (corners <= np.array([image.shape[1], image.shape[0]])))
    # Rack rows are drawn where the layout has them (dark blue), the floor elsewhere (light grey).
    for xmin, ymin, xmax, ymax in spec.layout.obstacles:
        px, py = world_to_map_pixels(np.array([[(xmin + xmax) / 2, (ymin + ymax) / 2]]), s0.scale_factor,
                                     s0.translation_to_global, image.shape[0])[0]
        assert tuple(image[int(py), int(px)]) == (70, 90, 130)
    cams = world_to_map_pixels(np.array([s.coordinates for s in calib.sensors]), s0.scale_factor,
                               s0.translation_to_global, image.shape[0])
    assert np.all((cams > 0) & (cams < np.array([image.shape[1], image.shape[0]])))


def test_amodal_boxes_are_projected_corners(tiny_scene):
    """Project the GT 3D box corners with cameraMatrix from calibration.json: the '2d bounding box'
    is their bounding rectangle clipped to the image (within 1 px); corners behind the camera are
    handled by clipping the box edges at the near plane."""
    folder, _, _ = tiny_scene
    scene = RawScene(folder)
    calib = scene.calibration
    checked = 0
    for objects in scene.ground_truth.values():
        for obj in objects:
            corners = obj.corners()
            for sensor in calib.sensors:
                hom = np.concatenate([corners, np.ones((8, 1))], axis=1) @ sensor.camera_matrix.T
                z = hom[:, 2]
                if np.all(z > 0.05):
                    uv = hom[:, :2] / z[:, None]
                else:  # near-plane clipping by hand
                    pts = [corners[z > 0.05]]
                    for a, b in BOX_EDGES:
                        if (z[a] > 0.05) != (z[b] > 0.05):
                            s = (0.05 - z[a]) / (z[b] - z[a])
                            pts.append((corners[a] + s * (corners[b] - corners[a]))[None])
                    pts = np.concatenate(pts)
                    if len(pts) == 0:
                        assert sensor.id not in obj.bbox_full
                        continue
                    h2 = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ sensor.camera_matrix.T
                    uv = h2[:, :2] / h2[:, 2:]
                box = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
                w, h = sensor.width - 1, sensor.height - 1
                if box[2] < 0 or box[3] < 0 or box[0] > w or box[1] > h:
                    assert sensor.id not in obj.bbox_full
                    continue
                expected = np.clip(box, 0, [w, h, w, h])
                assert obj.bbox_full[sensor.id] == pytest.approx(expected, abs=1.0)
                checked += 1
    assert checked > 20


def test_visible_boxes_inside_amodal_boxes(tiny_scene):
    folder, _, _ = tiny_scene
    gt = RawScene(folder).ground_truth
    n = 0
    for objects in gt.values():
        for obj in objects:
            for cam, vis in obj.bbox_visible.items():
                full = obj.bbox_full[cam]
                assert vis[0] >= full[0] - 0.01 and vis[1] >= full[1] - 0.01
                assert vis[2] <= full[2] + 0.01 and vis[3] <= full[3] + 0.01
                n += 1
    assert n > 10


def test_same_seed_same_bytes_different_seed_differs(tmp_path, tiny_params, params_factory, tiny_scene):
    """Rendering again (here through 2 worker processes) gives identical GT, videos and depth files."""
    folder, _, _ = tiny_scene
    again = tmp_path / "again"
    again.mkdir()
    params = params_factory(**{**vars_of(tiny_params), "workers": 2})
    render_scene(params, again, scene_index=0, split="train")
    for rel in ["ground_truth.json", "calibration.json", "map.png", "videos/Camera_0001.mp4",
                "depth_maps/Camera_0002.h5"]:
        assert _digest(folder / rel) == _digest(again / rel), rel
    other = tmp_path / "other"
    other.mkdir()
    render_scene(params_factory(**{**vars_of(tiny_params), "seed": 1}), other, scene_index=0, split="train")
    assert _digest(folder / "ground_truth.json") != _digest(other / "ground_truth.json")
    assert _digest(folder / "videos/Camera_0000.mp4") != _digest(other / "videos/Camera_0000.mp4")


def vars_of(params) -> dict:
    return params.model_dump() if hasattr(params, "model_dump") else dict(vars(params))


def test_dataset_layout_naming_and_test_split(tmp_path, params_factory):
    params = params_factory(width=64, height=48, cameras=2, frames=4, workers=1, depth=False,
                            scenes={"train": 1, "val": 1, "test": 1}, objects_per_scene=(2, 3),
                            camera_naming="two_digit")
    summaries = render_dataset(params, tmp_path / "raw")
    assert [(s["split"], s["scene"]) for s in summaries] == [
        ("train", "Warehouse_000"), ("val", "Warehouse_015"), ("test", "Warehouse_017")]
    found = find_scenes(tmp_path / "raw")
    assert [p.relative_to(tmp_path / "raw").as_posix() for p in found] == [
        "test/Warehouse_017", "train/Warehouse_000", "val/Warehouse_015"]
    test_scene = RawScene(tmp_path / "raw/test/Warehouse_017")
    assert not test_scene.has_ground_truth and not test_scene.has_depth
    assert test_scene.camera_ids == ["Camera", "Camera_01"]
    assert RawScene(tmp_path / "raw/val/Warehouse_015").has_ground_truth
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "raw").rglob("*"))


def test_progress_counts_camera_frames(tmp_path, params_factory):
    params = params_factory(width=64, height=48, cameras=2, frames=7, workers=1, depth=False,
                            objects_per_scene=(1, 2))
    seen = []
    render_scene(params, tmp_path, scene_index=0, split="train", progress=seen.append)
    assert sum(seen) == 14


def test_bad_parameters_are_rejected(tmp_path, plain_params_factory):
    with pytest.raises(ValueError, match="even"):
        render_scene(plain_params_factory(width=65, height=48), tmp_path, scene_index=0, split="train")
    with pytest.raises(ValueError, match="split"):
        render_dataset(plain_params_factory(scenes={"holdout": 1}), tmp_path)
    with pytest.raises(ValueError, match="objects_per_scene"):
        render_scene(plain_params_factory(objects_per_scene=(3, 1)), tmp_path, scene_index=0, split="train")
    with pytest.raises(ValueError, match="classes"):
        render_scene(plain_params_factory(classes=["Robot"]), tmp_path, scene_index=0, split="train")
