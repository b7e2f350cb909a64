"""Sparse4D augmentation: image affine and BEV transform folded into the projection, boxes under flips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import look_at

from visionops.data.schema import box_corners
from visionops.data.sparse4d_augment import (
    AugParams,
    BevAugParams,
    ImageAugParams,
    Sparse4DAugment,
    bev_matrix,
    image_transform,
    project,
    projection_matrix,
    transform_boxes,
    warp_image,
)

SRC, DST = (192, 108), (160, 96)
K = np.array([[150.0, 0.0, 95.5], [0.0, 150.0, 53.5], [0.0, 0.0, 1.0]])
W2C = np.eye(4)
W2C[:3] = look_at(np.array([-6.0, -1.0, 4.0]), np.array([0.0, 0.0, 0.5]))

PARAMS = [
    AugParams(),
    AugParams(ImageAugParams(scale=1.1, crop_x=0.3, bot_pct=0.05, flip=True), BevAugParams(0.3, 1.05, True, False)),
    AugParams(ImageAugParams(scale=0.9, crop_x=0.9, flip=False, rotate_deg=5.4),
              BevAugParams(-0.39, 0.95, False, True)),
    AugParams(ImageAugParams(scale=1.3, crop_x=0.0, bot_pct=0.1, flip=True, rotate_deg=-3.0),
              BevAugParams(1.0, 1.0, True, True)),
]


def _points(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([-1.5, -1.5, 0.0], [1.5, 1.5, 1.5], size=(n, 3))


@pytest.mark.parametrize("params", PARAMS)
def test_augmented_projection_of_moved_points_equals_image_affine_of_original_pixels(params):
    pts = _points()
    uv, depth = project(projection_matrix(K, W2C), pts)
    transform = image_transform(params.image, SRC, DST)
    bev = bev_matrix(params.bev)
    moved = (np.c_[pts, np.ones(len(pts))] @ bev.T)[:, :3]
    uv_aug, depth_aug = project(projection_matrix(K, W2C, transform.matrix, bev), moved)
    expected = np.c_[uv, np.ones(len(uv))] @ transform.matrix.T
    np.testing.assert_allclose(uv_aug, expected[:, :2], atol=1e-6)
    np.testing.assert_allclose(depth_aug, depth, atol=1e-9)  # z-depth is what the depth maps hold


@pytest.mark.parametrize("params", PARAMS)
def test_projected_points_land_on_the_same_image_content(params):
    """Paint a distinct colour at each projected point, augment the image, and look it up at the augmented
    projection of the augmented point."""
    pts = _points(12, seed=1)
    uv, _ = project(projection_matrix(K, W2C), pts)
    rng = np.random.default_rng(2)
    colours = rng.integers(60, 255, size=(len(pts), 3)).astype(np.uint8)
    image = np.zeros((SRC[1], SRC[0], 3), dtype=np.uint8)
    for (u, v), colour in zip(np.round(uv).astype(int), colours, strict=True):
        image[max(v - 3, 0):v + 4, max(u - 3, 0):u + 4] = colour
    transform = image_transform(params.image, SRC, DST)
    out = warp_image(image, transform)
    assert out.shape == (DST[1], DST[0], 3)
    bev = bev_matrix(params.bev)
    moved = (np.c_[pts, np.ones(len(pts))] @ bev.T)[:, :3]
    uv_aug, _ = project(projection_matrix(K, W2C, transform.matrix, bev), moved)
    checked = 0
    for (u, v), (u0, v0), colour in zip(uv_aug, uv, colours, strict=True):
        inside = 4 <= u0 < SRC[0] - 4 and 4 <= v0 < SRC[1] - 4 and 3 <= u < DST[0] - 3 and 3 <= v < DST[1] - 3
        if not inside:
            continue
        checked += 1
        pixel = out[int(round(v)), int(round(u))].astype(int)
        assert np.abs(pixel - colour).max() <= 40, (u, v, pixel, colour)
    assert checked >= 5


@pytest.mark.parametrize("flip_x,flip_y", [(False, False), (True, False), (False, True), (True, True)])
def test_box_corners_follow_the_bev_transform_under_flips(flip_x, flip_y):
    params = BevAugParams(angle=0.7, scale=1.2, flip_x=flip_x, flip_y=flip_y)
    rng = np.random.default_rng(3)
    boxes = np.c_[rng.uniform(-5, 5, (6, 3)), rng.uniform(0.3, 2.0, (6, 3)), rng.uniform(-math.pi, math.pi, 6)]
    velocity = rng.normal(size=(6, 3))
    new_boxes, new_velocity = transform_boxes(boxes, velocity, params)
    linear = bev_matrix(params)[:3, :3]
    for box, new in zip(boxes, new_boxes, strict=True):
        expected = box_corners(box[:3], box[3:6], np.array([0.0, 0.0, box[6]])) @ linear.T
        got = box_corners(new[:3], new[3:6], np.array([0.0, 0.0, new[6]]))
        # Same corner set (order may differ under a mirror).
        dist = np.linalg.norm(expected[:, None] - got[None], axis=-1)
        assert dist.min(axis=1).max() < 1e-9
        # The heading axis (local x) stays the heading axis: its direction is the mirrored one up to sign.
        heading = linear @ np.array([math.cos(box[6]), math.sin(box[6]), 0.0])
        assert abs(abs(heading[:2] @ [math.cos(new[6]), math.sin(new[6])]) - params.scale) < 1e-9
    np.testing.assert_allclose(new_boxes[:, 3:6], boxes[:, 3:6] * 1.2)
    np.testing.assert_allclose(new_velocity, velocity @ linear.T)
    assert np.all((new_boxes[:, 6] >= -math.pi) & (new_boxes[:, 6] < math.pi))


def test_identity_params_change_nothing():
    transform = image_transform(ImageAugParams(), DST, DST)
    np.testing.assert_allclose(transform.matrix, np.eye(3), atol=1e-12)
    image = np.random.default_rng(0).integers(0, 255, (DST[1], DST[0], 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_image(image, transform), image)
    boxes = np.array([[1.0, 2.0, 0.5, 0.4, 0.6, 1.7, 0.3]])
    out, vel = transform_boxes(boxes, np.ones((1, 3)), BevAugParams())
    np.testing.assert_allclose(out, boxes)
    np.testing.assert_allclose(projection_matrix(K, W2C, transform.matrix, bev_matrix(BevAugParams())),
                               projection_matrix(K, W2C))


def test_resize_to_another_aspect_covers_the_input_and_keeps_pixel_centres():
    # 192x108 -> 160x96: base = max(160/192, 96/108) = 0.889 covers both axes, x is cropped.
    transform = image_transform(ImageAugParams(crop_x=0.5), SRC, DST)
    assert transform.resized == (171, 96)
    corner = transform.matrix @ np.array([-0.5, -0.5, 1.0])  # the stored image's top-left edge
    assert corner[1] == pytest.approx(-0.5)


def test_focal_matches_the_augmented_intrinsics():
    """Sparse4D #4: the depth head's focal must be the fx of the augmented intrinsics (flip keeps its size)."""
    for params in PARAMS:
        transform = image_transform(params.image, SRC, DST)
        augmented_k = transform.matrix @ K
        scale = math.sqrt(abs(np.linalg.det(augmented_k[:2, :2])))  # rotation/flip invariant
        assert K[0, 0] * transform.focal_scale == pytest.approx(scale, rel=0.01)


def test_depth_is_warped_with_nearest_neighbour_so_no_new_values_appear():
    depth = np.zeros((SRC[1], SRC[0]), dtype=np.uint16)
    depth[20:60, 30:90] = 5000
    depth[40:80, 60:150] = 9000
    out = warp_image(depth, image_transform(PARAMS[2].image, SRC, DST), nearest=True)
    assert set(np.unique(out)) <= {0, 5000, 9000}


def test_sample_is_deterministic_and_ranges_are_checked():
    aug = Sparse4DAugment(rotate_deg=5.0)
    a = aug.sample(np.random.default_rng(7))
    assert a == aug.sample(np.random.default_rng(7))
    assert a != aug.sample(np.random.default_rng(8))
    draws = [aug.sample(np.random.default_rng(s)) for s in range(200)]
    assert all(0.95 <= d.image.scale <= 1.1 and abs(d.bev.angle) <= 0.3925 for d in draws)
    assert 60 < sum(d.image.flip for d in draws) < 140
    with pytest.raises(ValueError, match="flip_prob"):
        Sparse4DAugment(flip_prob=1.5)
    with pytest.raises(ValueError, match="resize_lim"):
        Sparse4DAugment(resize_lim=(1.2, 1.0))
    with pytest.raises(ValueError, match="bot_pct_lim"):
        Sparse4DAugment(bot_pct_lim=(0.0, 1.0))
