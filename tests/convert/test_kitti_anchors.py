"""KITTI 2D labels and k-means anchors from the conversion."""

from __future__ import annotations

import numpy as np
import pytest
from convert_factories import convert_params, run_conversion

from visionops.data.anchors import ANCHOR_DIM, kmeans_anchors, load_anchors
from visionops.data.frame_store import FrameStore
from visionops.data.kitti import KittiLabelError, KittiObject, occlusion_level, parse_label_file
from visionops.data.ovpkl import load_infos
from visionops.data.raw import RawScene


def test_one_image_and_label_per_camera_frame_with_visible_boxes(converted, rendered_raw):
    dirs, report, _ = converted
    for split, scene_name in (("train", "Warehouse_000"), ("val", "Warehouse_015")):
        images = sorted((dirs.kitti / split / "images").glob("*.jpg"))
        labels = sorted((dirs.kitti / split / "labels").glob("*.txt"))
        assert [p.stem for p in images] == [p.stem for p in labels]
        assert len(images) == 3 * 10 == report["summary"]["kitti"][split]["images"]
        scene = RawScene(rendered_raw / split / scene_name)
        for label_path in labels:
            _, cam, frame = label_path.stem.rsplit("_", 2)[0], "_".join(label_path.stem.split("_")[2:4]), \
                int(label_path.stem.rsplit("_", 1)[1])
            lines = [line.split(" ") for line in label_path.read_text().splitlines()]
            assert all(len(parts) == 15 for parts in lines)
            expected = [o for o in scene.ground_truth.get(frame, []) if cam in o.bbox_visible]
            kept = [o for o in expected
                    if o.bbox_visible[cam][2] - o.bbox_visible[cam][0] >= 4
                    and o.bbox_visible[cam][3] - o.bbox_visible[cam][1] >= 8]
            parsed = parse_label_file(label_path)
            assert len(parsed) == len(kept)
            for obj, gt in zip(parsed, kept, strict=True):
                assert obj.name == gt.object_type.lower()
                np.testing.assert_allclose(obj.box, gt.bbox_visible[cam], atol=0.006)
                assert 0.0 <= obj.truncated <= 1.0 and obj.occluded in (0, 1, 2)
        # the image is the frame store's JPEG, byte for byte
        first = images[0]
        cam = "_".join(first.stem.split("_")[2:4])
        with FrameStore(dirs.frames / scene_name / f"{cam}.h5") as store:
            assert store.jpeg(int(first.stem.rsplit("_", 1)[1])) == first.read_bytes()


def test_kitti_line_has_15_fields_and_round_trips(tmp_path):
    obj = KittiObject("person", 0.25, 1, (1.0, 2.5, 30.25, 60.0))
    line = obj.to_line()
    assert len(line.split(" ")) == 15
    path = tmp_path / "x.txt"
    path.write_text(line + "\n\n")
    assert parse_label_file(path) == [obj]
    path.write_text("person 0 0 -10 1 2 3\n")
    with pytest.raises(KittiLabelError, match=r"x\.txt:1: expected 15 fields"):
        parse_label_file(path)


def test_occlusion_levels():
    assert [occlusion_level(v) for v in (1.0, 0.8, 0.5, 0.1, None)] == [0, 0, 1, 2, 3]


def test_class_map_min_size_and_frame_step(rendered_raw, tmp_path):
    params = convert_params(splits=["train"], kitti={"class_names": {"Person": "pedestrian"}, "min_height": 30.0,
                                                     "min_width": 0.0, "frame_step": 5})
    dirs, report, _ = run_conversion(rendered_raw, tmp_path, params)
    labels = sorted((dirs.kitti / "train" / "labels").glob("*.txt"))
    assert len(labels) == 3 * 2  # frames 0 and 5
    names = {obj.name for path in labels for obj in parse_label_file(path)}
    assert names <= {"pedestrian"}
    heights = [obj.box[3] - obj.box[1] for path in labels for obj in parse_label_file(path)]
    assert all(h >= 30.0 for h in heights)
    # every person box under 30 px high was dropped and counted
    assert report["summary"]["kitti"]["train"]["too_small"] > 0


@pytest.mark.parametrize(("val_frame_step", "val_frames"), [(2, 5), (None, 2)])
def test_val_split_has_its_own_frame_step(rendered_raw, tmp_path, val_frame_step, val_frames):
    # the scored split may keep more frames than train; null falls back to frame_step
    params = convert_params(splits=["train", "val"], kitti={"frame_step": 5, "val_frame_step": val_frame_step})
    dirs, report, _ = run_conversion(rendered_raw, tmp_path, params)
    assert len(list((dirs.kitti / "train" / "labels").glob("*.txt"))) == 3 * 2  # frames 0 and 5
    assert len(list((dirs.kitti / "val" / "labels").glob("*.txt"))) == 3 * val_frames
    assert report["summary"]["kitti"]["val"]["images"] == 3 * val_frames


def test_anchors_are_kmeans_centres_of_the_training_boxes(converted):
    dirs, report, _ = converted
    anchors = load_anchors(dirs.anchors / "kmeans16.npy")
    assert anchors.shape == (16, ANCHOR_DIM) and anchors.dtype == np.float32
    infos, _ = load_infos(dirs.ovpkl / "train")
    boxes = np.concatenate([i["gt_boxes"][i["valid_flag"]] for i in infos])
    np.testing.assert_allclose(anchors[:, 3:6], np.log(boxes[:, 3:6].mean(0))[None].repeat(16, 0), rtol=1e-6)
    np.testing.assert_array_equal(anchors[:, 6], 0)
    np.testing.assert_array_equal(anchors[:, 7], 1)
    np.testing.assert_array_equal(anchors[:, 8:], 0)
    lo, hi = boxes[:, :3].min(0), boxes[:, :3].max(0)
    assert np.all(anchors[:, :3] >= lo - 1e-4) and np.all(anchors[:, :3] <= hi + 1e-4)
    assert report["summary"]["anchors"]["padded"] == 0


def test_kmeans_pads_when_there_are_too_few_points():
    centres = np.array([[0.0, 0, 1], [1, 0, 1], [0, 1, 1]])
    sizes = np.ones((3, 3))
    with pytest.warns(UserWarning, match="only 3 distinct"):
        anchors, report = kmeans_anchors(centres, sizes, 5, seed=0)
    assert anchors.shape == (5, 11) and report["padded"] == 2
    with pytest.raises(ValueError, match="no training boxes"):
        kmeans_anchors(np.zeros((0, 3)), np.zeros((0, 3)), 5)
