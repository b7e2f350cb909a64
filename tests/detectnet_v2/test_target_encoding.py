"""GridBox target encoding (TAO rasterizer semantics) and LTRB box coding."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.models.detectnet_v2.box_coding import decode_ltrb, encode_ltrb
from visionops.models.detectnet_v2.target_encoding import ClassTargetConfig, GridboxTargetEncoder

S = 16  # stride


def reference_encode(boxes, labels, num_classes, image_size, configs, deadzone=0.67, scale=35.0, offset=0.5, n=4):
    """Literal, loop-per-cell transcription of the spec (TAO bbox_rasterizer.py + rasterize_bbox kernel).

    Kept deliberately naive and independent of the implementation under test; inputs must already be clean
    (inside the image, non-degenerate).
    """
    width, height = image_size
    gw, gh = width // S, height // S
    cov = np.zeros((num_classes, gh, gw), np.float32)
    norm = np.zeros_like(cov)
    bbox = np.zeros((4 * num_classes, gh, gw), np.float32)
    params = []
    for (x1p, y1p, x2p, y2p), label in zip(boxes, labels, strict=True):
        cfg = configs[label]
        x1, y1, x2, y2 = x1p / S, y1p / S, x2p / S, y2p / S
        cx = x1 + cfg.cov_center_x * (x2 - x1)
        cy = y1 + cfg.cov_center_y * (y2 - y1)
        sx = cx - x1 if cfg.cov_center_x < 0.5 else x2 - cx
        sy = cy - y1 if cfg.cov_center_y < 0.5 else y2 - cy
        csx, csy = max(cfg.cov_radius_x * sx, 0.1), max(cfg.cov_radius_y * sy, 0.1)
        r = cfg.bbox_min_radius
        if csx < r:
            csx, csy = r, r * csy / csx
        if csy < r:
            csx, csy = r * csx / csy, r
        dsx = max((1 - deadzone) * csx + deadzone * sx, csx)
        dsy = max((1 - deadzone) * csy + deadzone * sy, csy)
        inv_area = 1.0 / max(4 * csx * csy, 1.0)
        params.append((y2p, label, cx, cy, csx, csy, dsx, dsy, inv_area, (x1p, y1p, x2p, y2p)))
    params.sort(key=lambda p: p[0])  # ascending ymax (stable)
    max_cov = np.zeros((num_classes, gh, gw))
    for _, label, cx, cy, csx, csy, dsx, dsy, inv_area, (x1p, y1p, x2p, y2p) in params:
        for j in range(gh):
            for i in range(gw):
                c = a = 0
                for l in range(n):
                    for k in range(n):
                        x, y = i + (k + 0.5) / n, j + (l + 0.5) / n
                        c += ((y - cy) / csy) ** 2 + ((x - cx) / csx) ** 2 < 1.0
                        a += ((y - cy) / dsy) ** 2 + ((x - cx) / dsx) ** 2 < 1.0
                c, a = c / n**2, a / n**2
                if a >= max_cov[label, j, i] and a > 0:
                    max_cov[label, j, i] = 0
                    cov[label, j, i] = norm[label, j, i] = 0
                    bbox[4 * label:4 * label + 4, j, i] = 0
                if c >= max_cov[label, j, i] and c > 0:
                    max_cov[label, j, i] = c
                    cov[label, j, i] = c
                    norm[label, j, i] = inv_area * c
                    gx, gy = i * S + offset, j * S + offset
                    bbox[4 * label:4 * label + 4, j, i] = [(gx - x1p) / scale, (gy - y1p) / scale,
                                                          (x2p - gx) / scale, (y2p - gy) / scale]
    return cov, norm, bbox


def random_boxes(rng, m, width, height, min_size=4.0, max_size=200.0):
    x1 = rng.uniform(0, width - min_size, m)
    y1 = rng.uniform(0, height - min_size, m)
    x2 = np.minimum(x1 + rng.uniform(min_size, max_size, m), width)
    y2 = np.minimum(y1 + rng.uniform(min_size, max_size, m), height)
    return np.stack([x1, y1, x2, y2], axis=1)


# ----------------------------------------------------------------------------------------------------------------
# Box coding


def test_encode_ltrb_hand_values():
    boxes = torch.tensor([[10.0, 20.0, 100.0, 60.0]])
    ltrb = encode_ltrb(boxes, grid_h=4, grid_w=7)
    assert ltrb.shape == (1, 4, 4, 7)
    # cell (i=2, j=1): reference point (32.5, 16.5) px
    assert ltrb[0, :, 1, 2].tolist() == pytest.approx([(32.5 - 10) / 35, (16.5 - 20) / 35, (100 - 32.5) / 35,
                                                       (60 - 16.5) / 35])


def test_decode_ltrb_inverts_encode_and_clips():
    boxes = torch.tensor([[10.0, 20.0, 100.0, 60.0], [0.0, 0.0, 30.0, 40.0]])
    bbox = encode_ltrb(boxes, 4, 7).reshape(1, 8, 4, 7)  # two "classes", class-major channels
    out = decode_ltrb(bbox, image_size=(112, 64))
    assert out.shape == (1, 2, 4, 4, 7)
    torch.testing.assert_close(out[0, 0], boxes[0].view(4, 1, 1).expand(4, 4, 7), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, 1], boxes[1].view(4, 1, 1).expand(4, 4, 7), atol=1e-4, rtol=0)
    # Clipping: to the image, and never inverted (x2 >= x1, y2 >= y1).
    wild = torch.zeros(1, 4, 2, 2)
    wild[0, 0] = 10.0  # L: x1 = gx - 350 -> 0
    wild[0, 1] = -10.0  # T: y1 = gy + 350 -> clipped to H
    wild[0, 2] = 10.0  # R: x2 = gx + 350 -> W
    wild[0, 3] = -20.0  # B: y2 = gy - 700 -> below y1 -> y1
    out = decode_ltrb(wild, image_size=(32, 32))[0, 0]
    assert (out[0] == 0).all() and (out[1] == 32).all() and (out[2] == 32).all() and (out[3] == out[1]).all()


# ----------------------------------------------------------------------------------------------------------------
# Single box


@pytest.fixture
def enc() -> GridboxTargetEncoder:
    return GridboxTargetEncoder(3, image_size=(320, 192))  # 20 x 12 grid


def test_single_centred_box(enc):
    box = [80.0, 48.0, 240.0, 144.0]  # cells x 5..15, y 3..9: centre (10, 6), half (5, 3)
    t = enc.encode([box], [1])
    assert t["cov"].shape == (3, 12, 20) and t["cov_norm"].shape == (3, 12, 20) and t["bbox"].shape == (12, 12, 20)
    assert t["cov"].dtype == torch.float32
    cov = t["cov"][1]
    assert float(cov.min()) >= 0.0 and float(cov.max()) == 1.0
    # Coverage semi-axes 0.4 * (5, 3) = (2, 1.2) cells: full cells at the centre, nothing beyond the ellipse.
    assert cov[5, 9] == 1.0 and cov[5, 10] == 1.0
    ys, xs = torch.nonzero(cov, as_tuple=True)
    assert xs.min() >= 8 and xs.max() <= 11 and ys.min() >= 4 and ys.max() <= 7
    assert cov[0].sum() == 0 and cov[:, :5].sum() == 0 and cov[:, 15:].sum() == 0
    # Hand count for cell (i=11, j=5): samples x in 11.125..11.875, y in 5.125..5.875 inside
    # ((x-10)/2)^2 + ((y-6)/1.2)^2 < 1.
    inside = sum(((11 + (k + 0.5) / 4 - 10) / 2) ** 2 + ((5 + (l + 0.5) / 4 - 6) / 1.2) ** 2 < 1
                 for k in range(4) for l in range(4))
    assert cov[5, 11] == inside / 16 and 0 < inside < 16
    # Other classes untouched.
    assert t["cov"][[0, 2]].sum() == 0 and t["bbox"][:4].sum() == 0 and t["bbox"][8:].sum() == 0
    # cov_norm = inv_bbox_area * cov, inv area = 1 / max(4 * 2 * 1.2, 1).
    torch.testing.assert_close(t["cov_norm"][1], cov / 9.6)
    # bbox at a covered cell = hand LTRB at the reference point (i*16 + 0.5, j*16 + 0.5), not times coverage.
    gx, gy = 11 * 16 + 0.5, 5 * 16 + 0.5
    expected = [(gx - 80) / 35, (gy - 48) / 35, (240 - gx) / 35, (144 - gy) / 35]
    assert t["bbox"][4:8, 5, 11].tolist() == pytest.approx(expected, abs=1e-6)
    # bbox only where covered.
    assert (t["bbox"][4:8][:, cov == 0] == 0).all() and (t["bbox"][4:8][:, cov > 0] != 0).any()


@pytest.mark.parametrize("deadzone", [0.4, 0.67, 1.0])
def test_matches_reference_transcription_on_random_scenes(deadzone):
    configs = [ClassTargetConfig(), ClassTargetConfig(cov_radius_x=1.0, cov_radius_y=1.0),
               ClassTargetConfig(cov_center_x=0.3, cov_center_y=0.7, cov_radius_x=0.6, cov_radius_y=0.3,
                                 bbox_min_radius=0.5)]
    enc = GridboxTargetEncoder(3, image_size=(320, 192), class_configs=configs, deadzone_radius=deadzone)
    rng = np.random.default_rng(0)
    for _ in range(4):
        boxes = random_boxes(rng, 10, 320, 192)
        labels = rng.integers(0, 3, 10)
        t = enc.encode(boxes, labels)
        cov, norm, bbox = reference_encode(boxes, labels, 3, (320, 192), configs, deadzone=deadzone)
        np.testing.assert_array_equal(t["cov"].numpy(), cov)
        np.testing.assert_allclose(t["cov_norm"].numpy(), norm, rtol=1e-6, atol=0)
        np.testing.assert_allclose(t["bbox"].numpy(), bbox, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(x1=st.floats(0, 300), y1=st.floats(0, 170), w=st.floats(1, 320), h=st.floats(1, 192),
       label=st.integers(0, 2))
def test_decode_of_encode_is_the_box_at_every_covered_cell(x1, y1, w, h, label):
    enc = GridboxTargetEncoder(3, image_size=(320, 192))
    box = np.array([x1, y1, min(x1 + w, 320.0), min(y1 + h, 192.0)])
    if box[2] <= box[0] or box[3] <= box[1]:
        return
    t = enc.encode(box[None], [label])
    covered = t["cov"][label] > 0
    assert covered.any()  # bbox_min_radius 1 guarantees some coverage even for a 1-px box
    decoded = decode_ltrb(t["bbox"][None], stride=16, image_size=(320, 192))[0, label]  # (4, H, W)
    expected = torch.as_tensor(box, dtype=torch.float32).view(4, 1)
    torch.testing.assert_close(decoded[:, covered], expected.expand(4, int(covered.sum())), atol=2e-3, rtol=0)


def test_coverage_fractions_are_multiples_of_one_sixteenth(enc):
    rng = np.random.default_rng(1)
    t = enc.encode(random_boxes(rng, 15, 320, 192), rng.integers(0, 3, 15))
    sixteenths = t["cov"].numpy() * 16
    np.testing.assert_array_equal(sixteenths, np.round(sixteenths))
    assert ((sixteenths > 0) & (sixteenths < 16)).any()  # there are partial cells


def test_bbox_min_radius_scales_tiny_boxes_keeping_aspect(enc):
    box = np.array([[152.0, 88.0, 184.0, 104.0]])  # 2 x 1 cells: half (1, 0.5) -> cov axes 0.4 x 0.2
    centre, cov_axes, dead_axes, inv_area = enc._ellipses(box, np.array([0]))
    np.testing.assert_allclose(cov_axes[0], [2.0, 1.0])  # scaled to min radius 1 on y, aspect 2:1 kept
    np.testing.assert_allclose(dead_axes[0], [2.0, 1.0])  # deadzone never smaller than coverage
    assert inv_area[0] == pytest.approx(1 / 8)
    t = enc.encode(box, [0])
    cov = t["cov"][0]
    ys, xs = torch.nonzero(cov, as_tuple=True)
    assert int(xs.max() - xs.min() + 1) == 5 and int(ys.max() - ys.min() + 1) == 2  # x (8.5, 12.5), y (5, 7)
    torch.testing.assert_close(t["cov_norm"][0], cov / 8)
    # Larger than the box itself, and its bbox targets still decode to the box.
    decoded = decode_ltrb(t["bbox"][None], image_size=(320, 192))[0, 0][:, cov > 0]
    torch.testing.assert_close(decoded, torch.tensor(box[0], dtype=torch.float32).view(4, 1).expand_as(decoded))


def test_tiny_box_aspect_with_x_short():
    enc = GridboxTargetEncoder(1, image_size=(320, 192), class_configs=[ClassTargetConfig(bbox_min_radius=1.5)])
    _, cov_axes, _, _ = enc._ellipses(np.array([[100.0, 50.0, 116.0, 98.0]]), np.array([0]))  # 1 x 3 cells
    np.testing.assert_allclose(cov_axes[0], [1.5, 4.5])  # 0.2 x 0.6 -> x up to 1.5, y by the same factor


def test_ellipse_centre_and_radius_fractions():
    cfg = ClassTargetConfig(cov_center_x=0.25, cov_center_y=0.75, cov_radius_x=1.0, cov_radius_y=0.5,
                            bbox_min_radius=0.0)
    enc = GridboxTargetEncoder(1, image_size=(320, 192), class_configs=[cfg], deadzone_radius=0.5)
    centre, cov_axes, dead_axes, inv_area = enc._ellipses(np.array([[0.0, 0.0, 128.0, 128.0]]), np.array([0]))
    np.testing.assert_allclose(centre[0], [2.0, 6.0])
    np.testing.assert_allclose(cov_axes[0], [2.0, 1.0])  # half = distance to the nearer edge: 2 and 2
    np.testing.assert_allclose(dead_axes[0], [2.0, 1.5])  # 0.5 * cov + 0.5 * half
    assert inv_area[0] == pytest.approx(1 / 8)


# ----------------------------------------------------------------------------------------------------------------
# Several boxes


def deadzone_fraction(enc, box, n=4):
    """(H, W) fraction of each cell's n x n samples inside the box's deadzone ellipse (naive loops)."""
    centre, _, dead_axes, _ = enc._ellipses(np.asarray([box], float), np.array([0]))
    (cx, cy), (dx, dy) = centre[0], dead_axes[0]
    frac = np.zeros((enc.grid_h, enc.grid_w))
    for j in range(enc.grid_h):
        for i in range(enc.grid_w):
            frac[j, i] = sum(((i + (k + 0.5) / n - cx) / dx) ** 2 + ((j + (l + 0.5) / n - cy) / dy) ** 2 < 1
                             for k in range(n) for l in range(n)) / n**2
    return frac


def test_nearer_box_wins_where_its_deadzone_overlaps():
    enc = GridboxTargetEncoder(1, image_size=(320, 192), class_configs=[ClassTargetConfig(0.5, 0.5, 0.8, 0.8)])
    far = np.array([32.0, 16.0, 192.0, 112.0])  # ymax 112
    near = np.array([112.0, 48.0, 288.0, 176.0])  # ymax 176: drawn last, whatever the input order
    both = enc.encode(np.stack([near, far]), [0, 0])
    assert all(torch.equal(both[k], enc.encode(np.stack([far, near]), [0, 0])[k]) for k in both)
    alone_far = enc.encode(far[None], [0])["cov"][0].numpy()
    alone_near = enc.encode(near[None], [0])["cov"][0].numpy()
    dead_near = deadzone_fraction(enc, near)
    decoded = decode_ltrb(both["bbox"][None], image_size=(320, 192))[0, 0].numpy()  # (4, H, W)
    cov = both["cov"][0].numpy()
    is_near = np.isclose(decoded, near[:, None, None], atol=1e-3).all(axis=0) & (cov > 0)
    is_far = np.isclose(decoded, far[:, None, None], atol=1e-3).all(axis=0) & (cov > 0)
    assert (is_near | is_far)[cov > 0].all()  # every covered cell regresses exactly one of the boxes
    np.testing.assert_array_equal(cov[is_near], alone_near[is_near])
    np.testing.assert_array_equal(cov[is_far], alone_far[is_far])
    # Where the near box's deadzone fraction reaches the far box's coverage, the far box is erased ...
    dominated = (dead_near > 0) & (dead_near >= alone_far)
    assert (dominated & (alone_far > 0)).sum() >= 5 and not is_far[dominated].any()
    np.testing.assert_array_equal(is_near[dominated], alone_near[dominated] > 0)
    # ... elsewhere the far box keeps its cells (even a few near-box edge cells where the far coverage is larger).
    np.testing.assert_array_equal(is_far[~dominated], alone_far[~dominated] > 0)
    assert ((alone_near > 0) & ~dominated).any()  # that case occurs here: the near box loses an edge cell
    assert is_far.sum() < (alone_far > 0).sum()


def test_deadzone_clears_farther_coverage_without_writing():
    # The near box's coverage ellipse is tiny but its deadzone (radius 1 = whole box) swallows the far one.
    cfgs = [ClassTargetConfig(cov_radius_x=0.2, cov_radius_y=0.2, bbox_min_radius=0.0)]
    enc = GridboxTargetEncoder(1, image_size=(320, 192), class_configs=cfgs, deadzone_radius=1.0)
    far = [144.0, 80.0, 176.0, 100.0]  # small, inside the near box, ymax 100
    near = [64.0, 16.0, 256.0, 176.0]
    t = enc.encode([far, near], [0, 0])
    alone_near = enc.encode([near], [0])
    for key in t:
        torch.testing.assert_close(t[key], alone_near[key])


def test_classes_are_separate_channels(enc):
    box_a, box_b = [80.0, 48.0, 240.0, 144.0], [96.0, 40.0, 256.0, 150.0]
    t = enc.encode([box_a, box_b], [0, 2])
    ta, tb = enc.encode([box_a], [0]), enc.encode([box_b], [2])
    for key in ("cov", "cov_norm"):
        torch.testing.assert_close(t[key][0], ta[key][0])
        torch.testing.assert_close(t[key][2], tb[key][2])
        assert t[key][1].sum() == 0
    torch.testing.assert_close(t["bbox"][0:4], ta["bbox"][0:4])
    torch.testing.assert_close(t["bbox"][8:12], tb["bbox"][8:12])
    assert t["bbox"][4:8].abs().sum() == 0


def test_encode_batch_stacks_per_image_targets(enc):
    rng = np.random.default_rng(3)
    boxes = [random_boxes(rng, m, 320, 192) for m in (3, 0, 5)]
    labels = [rng.integers(0, 3, len(b)) for b in boxes]
    batch = enc.encode_batch(boxes, labels)
    assert batch["cov"].shape == (3, 3, 12, 20) and batch["bbox"].shape == (3, 12, 12, 20)
    for n in range(3):
        single = enc.encode(boxes[n], labels[n])
        for key in single:
            torch.testing.assert_close(batch[key][n], single[key])
    assert batch["cov"][1].sum() == 0
    with pytest.raises(ValueError, match="image 1 of the batch.*label 7"):
        enc.encode_batch([boxes[0], [[0, 0, 10, 10]]], [labels[0], [7]])
    with pytest.raises(ValueError, match="2 box arrays but 1 label"):
        enc.encode_batch(boxes[:2], labels[:1])


def test_encode_speed_20_boxes_60x34_grid():
    enc = GridboxTargetEncoder(4, image_size=(960, 544))
    rng = np.random.default_rng(4)
    scenes = [(random_boxes(rng, 20, 960, 544, 10, 300), rng.integers(0, 4, 20)) for _ in range(30)]
    for boxes, labels in scenes[:5]:
        enc.encode(boxes, labels)
    times = []
    for boxes, labels in scenes:
        start = time.perf_counter()
        enc.encode(boxes, labels)
        times.append(time.perf_counter() - start)
    # Measured ~0.9 ms; the bound only catches a regression to per-cell Python loops (~100x slower).
    assert np.median(times) < 0.02


# ----------------------------------------------------------------------------------------------------------------
# Bad input


def test_degenerate_and_outside_boxes_are_skipped(enc):
    empty = enc.encode(np.zeros((0, 4)), np.zeros(0, int))
    assert all(v.abs().sum() == 0 for v in empty.values())
    bad = [[50, 50, 50, 80], [60, 60, 40, 90], [50, 70, 80, 70], [-100, 10, -5, 50], [330, 10, 400, 50],
           [10, 200, 50, 300]]
    t = enc.encode(bad, [0, 1, 2, 0, 1, 2])
    assert all(v.abs().sum() == 0 for v in t.values())


def test_partially_outside_box_is_clipped_first(enc):
    t = enc.encode([[-40.0, 100.0, 120.0, 260.0]], [2])
    clipped = enc.encode([[0.0, 100.0, 120.0, 192.0]], [2])
    for key in t:
        torch.testing.assert_close(t[key], clipped[key])
    assert t["cov"][2].sum() > 0


def test_accepts_tensors_and_float_labels(enc):
    boxes = torch.tensor([[80.0, 48.0, 240.0, 144.0]])
    a = enc.encode(boxes, torch.tensor([1]))
    b = enc.encode(boxes.numpy(), np.array([1.0]))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("label", [3, -1, 10])
def test_label_out_of_range(enc, label):
    with pytest.raises(ValueError, match=rf"label {label} .*num_classes=3"):
        enc.encode([[0, 0, 10, 10], [10, 10, 50, 50]], [0, label])


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_coordinates(enc, value):
    with pytest.raises(ValueError, match="box 1 has non-finite"):
        enc.encode([[0, 0, 10, 10], [10, value, 50, 50]], [0, 1])


def test_other_bad_input(enc):
    with pytest.raises(ValueError, match=r"shape \(M, 4\)"):
        enc.encode([[0, 0, 10]], [0])
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        enc.encode([[0, 0, 10, 10], [0, 0, 5, 5]], [0])
    with pytest.raises(ValueError, match="integer class indices"):
        enc.encode([[0, 0, 10, 10]], [0.5])
    with pytest.raises(ValueError, match="multiples of stride"):
        GridboxTargetEncoder(2, image_size=(100, 64))
    with pytest.raises(ValueError, match="class_configs"):
        GridboxTargetEncoder(2, image_size=(64, 64), class_configs=[ClassTargetConfig()])
    with pytest.raises(ValueError, match="deadzone_radius"):
        GridboxTargetEncoder(2, image_size=(64, 64), deadzone_radius=1.5)
    with pytest.raises(ValueError, match="cov_radius_x"):
        ClassTargetConfig(cov_radius_x=0.0)
    with pytest.raises(ValueError, match="cov_center_y"):
        ClassTargetConfig(cov_center_y=1.2)
