"""KITTI detection dataset and TAO-style augmentation: labels, class matching, resizing, consistency."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.data.augment import AugmentConfig, colour_jitter, hue_rotation, spatial_matrix, warp_boxes
from visionops.data.kitti import KittiObject, write_sample
from visionops.data.kitti_dataset import KittiDetectionDataset, collate

# The fixture has one "cat" box on purpose; the first test checks its warning.
pytestmark = pytest.mark.filterwarnings("ignore:.*is not a target class")


def _write(split_dir, stem, image, objects):
    ok, jpeg = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    write_sample(split_dir, stem, jpeg.tobytes(), objects)
    (split_dir / "images" / f"{stem}.jpg").rename(split_dir / "images" / f"{stem}.png")


@pytest.fixture
def kitti_dir(tmp_path):
    split = tmp_path / "train"
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[10:30, 20:40] = (255, 0, 0)  # a red box where the label says
    _write(split, "a", image, [KittiObject("Person", 0.0, 0, (20.0, 10.0, 40.0, 30.0)),
                               KittiObject("cat", 0.0, 0, (1.0, 1.0, 5.0, 5.0)),
                               KittiObject("forklift", 0.0, 0, (50.0, 40.0, 80.0, 60.0))])  # partly outside
    _write(split, "b", image, [])
    _write(split, "c", np.zeros((96, 128, 3), dtype=np.uint8), [KittiObject("person", 0, 0, (10.0, 20.0, 30.0, 60.0))])
    return split


def test_labels_are_lower_cased_unknown_classes_warned_once_and_boxes_clipped(kitti_dir):
    with pytest.warns(UserWarning, match=r"class 'cat' is not a target class") as record:
        ds = KittiDetectionDataset(kitti_dir, ["person", "Forklift"], (64, 48))
    assert len([w for w in record if "cat" in str(w.message)]) == 1
    assert ds.label_report() == {"images": 3, "objects": 3, "per_class": {"person": 2, "forklift": 1},
                                 "unknown_classes": {"cat": 1}, "empty_images": 1}
    item = ds[0]
    assert item["image"].shape == (3, 48, 64) and item["image"].dtype.is_floating_point
    np.testing.assert_allclose(item["boxes"].numpy(), [[20, 10, 40, 30], [50, 40, 64, 48]])
    assert item["labels"].tolist() == [0, 1]
    assert len(ds[1]["boxes"]) == 0  # an empty label file is a negative sample


def test_images_of_another_size_are_resized_with_their_boxes(kitti_dir):
    ds = KittiDetectionDataset(kitti_dir, ["person", "forklift"], (64, 48))
    image, boxes, _ = ds.sample(2)
    assert image.shape == (48, 64, 3)
    np.testing.assert_allclose(boxes, [[5, 10, 15, 30]])
    strict = KittiDetectionDataset(kitti_dir, ["person", "forklift"], (64, 48), auto_resize=False)
    with pytest.raises(ValueError, match=r"c\.png: image is 128x96, the network input is 64x48"):
        strict.sample(2)


def test_missing_folders_and_label_files_are_named(tmp_path, kitti_dir):
    with pytest.raises(FileNotFoundError, match="expected images/ and labels/"):
        KittiDetectionDataset(tmp_path / "nowhere", ["person"], (64, 48))
    (kitti_dir / "labels" / "b.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"b\.txt: label file missing"):
        KittiDetectionDataset(kitti_dir, ["person"], (64, 48))


def test_augmentation_moves_image_and_boxes_together(kitti_dir):
    config = AugmentConfig(hflip_probability=1.0, translate_max_x=6, translate_max_y=4, zoom_min=0.8, zoom_max=1.25,
                           hue_rotation_max=0, saturation_shift_max=0, contrast_scale_max=0)
    ds = KittiDetectionDataset(kitti_dir, ["person", "forklift"], (64, 48), augment=config, seed=1)
    for epoch in range(4):
        ds.set_epoch(epoch)
        image, boxes, labels = ds.sample(0)
        red = (image[..., 0] > 0.5) & (image[..., 1] < 0.3)
        ys, xs = np.nonzero(red)
        person = boxes[labels == 0][0]
        # the red square's pixels lie inside the transformed person box (1 px for interpolation)
        assert xs.min() >= person[0] - 1 and xs.max() <= person[2] + 1
        assert ys.min() >= person[1] - 1 and ys.max() <= person[3] + 1


def test_augmentation_is_deterministic_per_seed_epoch_and_index(kitti_dir):
    config = AugmentConfig(zoom_min=0.9, zoom_max=1.1)
    a = KittiDetectionDataset(kitti_dir, ["person", "forklift"], (64, 48), augment=config, seed=3)
    b = KittiDetectionDataset(kitti_dir, ["person", "forklift"], (64, 48), augment=config, seed=3)
    np.testing.assert_array_equal(a.sample(0)[0], b.sample(0)[0])
    b.set_epoch(1)
    assert not np.array_equal(a.sample(0)[0], b.sample(0)[0])


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_identity_ranges_give_the_identity_matrix_and_boxes_stay_in_the_image(seed):
    rng = np.random.default_rng(seed)
    identity = AugmentConfig(hflip_probability=0, translate_max_x=0, translate_max_y=0)
    np.testing.assert_allclose(spatial_matrix(rng, identity, 64, 48), np.eye(3), atol=1e-12)
    matrix = spatial_matrix(rng, AugmentConfig(zoom_min=0.5, zoom_max=2.0, rotate_rad_max=0.3), 64, 48)
    boxes = rng.uniform(0, 48, (5, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(2, 16, (5, 2))], axis=1)
    out, keep = warp_boxes(boxes, matrix, 64, 48)
    assert len(out) == keep.sum()
    assert np.all(out[:, [0, 2]] >= 0) and np.all(out[:, [0, 2]] <= 64)
    assert np.all(out[:, 2] - out[:, 0] >= 1) and np.all(out[:, 3] - out[:, 1] >= 1)


def test_colour_jitter_keeps_range_and_greys_under_hue_rotation():
    grey = np.full((4, 4, 3), 0.4, dtype=np.float32)
    np.testing.assert_allclose(grey @ hue_rotation(math.radians(20)).T, grey, atol=1e-6)
    out = colour_jitter(np.random.default_rng(0), np.random.default_rng(1).random((8, 8, 3), dtype=np.float32),
                        AugmentConfig(brightness_scale_max=0.5))
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


def test_collate_stacks_images_and_targets(kitti_dir):
    def encoder(boxes, labels):
        return {"cov": np.zeros((2, 3, 4), dtype=np.float32)}

    ds = KittiDetectionDataset(kitti_dir, ["person", "forklift"], (64, 48), encoder=encoder)
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 48, 64) and batch["targets"]["cov"].shape == (2, 2, 3, 4)
    assert [len(b) for b in batch["boxes"]] == [2, 0] and batch["stem"] == ["a", "b"]
