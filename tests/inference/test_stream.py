"""stream_scene: world coordinates, id carry-over through the bank, resets, only tracked outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from visionops.inference.frames import FrameInputs
from visionops.inference.stream import stream_scene
from visionops.models.sparse4d.model import Sparse4D
from visionops.models.sparse4d.presets import DEFAULT

# Tiny but complete: resnet18, 96x64 input, 64-d embeddings, 32 anchors (16 carried), 2 decoder layers.
CFG = DEFAULT.replace(num_anchor=32, num_temp_instances=16, input_size=(96, 64), embed_dims=64, fpn_out_channels=64,
                      anchor_embed_dims=(32, 8, 8, 16), num_decoder=2, ffn_channels=128, num_levels=3)
W, H = CFG.input_size
N, T = CFG.num_anchor, CFG.num_temp_instances


def camera_matrices(num_cams: int = 2) -> np.ndarray:
    """(K, 4, 4) world -> pixel of cameras on a 12 m circle, 3 m up, looking at the origin."""
    mats = []
    for i in range(num_cams):
        a = 2 * math.pi * i / num_cams
        cam = np.array([12 * math.cos(a), 12 * math.sin(a), 3.0])
        fwd = -cam / np.linalg.norm(cam)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        rot = np.stack([right, np.cross(fwd, right), fwd])
        ext, intr = np.eye(4), np.eye(4)
        ext[:3, :3], ext[:3, 3] = rot, -rot @ cam
        intr[:3, :3] = [[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]]
        mats.append(intr @ ext)
    return np.stack(mats)


def make_frames(count: int, scene: str = "Warehouse_000+bev-sensor-all", origin=(0.0, 0.0, 0.0), start: int = 0,
                dt: float = 1 / 30) -> list[FrameInputs]:
    """A static scene: the same images every frame."""
    images = np.random.default_rng(0).standard_normal((2, 3, H, W)).astype(np.float32)
    return [FrameInputs(images=images, projection_mat=camera_matrices(), image_wh=np.array([[W, H]] * 2, np.float32),
                        focal=np.full(2, 60.0, np.float32), timestamp=(start + i) * dt, frame_id=start + i,
                        cameras=["a", "b"], scene_name=scene, bev_origin=np.asarray(origin, dtype=np.float64))
            for i in range(count)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Sparse4D(CFG)


@pytest.fixture
def confident(model):
    """Every query confident (class bias +5), so every query gets an id and survives the threshold."""
    biases = [layer.cls_layers[-1].bias for layer in model.decoder.layers if hasattr(layer, "cls_layers")]
    saved = [b.detach().clone() for b in biases]
    with torch.no_grad():
        for b in biases:
            b.fill_(5.0)
    yield model
    with torch.no_grad():
        for b, s in zip(biases, saved, strict=True):
            b.copy_(s)


def test_outputs_are_the_card_fields_in_world_coordinates(confident):
    origin = np.array([10.0, -5.0, 0.25])
    bev = list(stream_scene(confident, make_frames(2), num_top=N))
    world = list(stream_scene(confident, make_frames(2, origin=origin), num_top=N))
    for a, b in zip(bev, world, strict=True):
        assert a.boxes_3d.shape == (N, 10) and a.boxes_3d.dtype == np.float64
        assert a.instance_feats.shape == (N, CFG.embed_dims)
        assert a.scores_3d.shape == a.cls_scores.shape == a.labels_3d.shape == a.instance_ids.shape == (N,)
        assert np.all(np.diff(a.scores_3d) <= 0)  # sorted by fused score
        np.testing.assert_array_equal(a.instance_ids, b.instance_ids)
        np.testing.assert_allclose(b.boxes_3d[:, :3], a.boxes_3d[:, :3] + origin, atol=1e-5)
        np.testing.assert_allclose(b.boxes_3d[:, 3:], a.boxes_3d[:, 3:], atol=1e-5)  # yaw, size, velocity unchanged
    assert [p.frame_id for p in world] == [0, 1] and world[0].scene_name == "Warehouse_000+bev-sensor-all"
    assert not confident.training and confident.instance_bank.cached_feature is None  # eval, cache dropped


def test_ids_carry_over_frames_and_restart_per_run(confident):
    first, second, third = stream_scene(confident, make_frames(3), num_top=N)
    assert sorted(first.instance_ids.tolist()) == list(range(N))  # cold start: every query gets a fresh id
    carried = set(second.instance_ids.tolist()) & set(first.instance_ids.tolist())
    assert len(carried) == T  # the T cached instances keep their ids ...
    assert set(second.instance_ids.tolist()) - carried == set(range(N, N + N - T))  # ... the rest are fresh
    assert len(set(third.instance_ids.tolist()) & set(second.instance_ids.tolist())) == T
    again = next(stream_scene(confident, make_frames(1), num_top=N))
    assert sorted(again.instance_ids.tolist()) == list(range(N))  # restart_ids: a new run restarts at 0
    kept = next(stream_scene(confident, make_frames(1), num_top=N, restart_ids=False))
    assert kept.instance_ids.min() == N  # the counter goes on, so ids stay unique over merged outputs


def test_scene_change_and_time_gap_restart_the_cache(confident):
    frames = make_frames(2, scene="A") + make_frames(2, scene="B")
    a0, a1, b0, b1 = stream_scene(confident, frames, num_top=N)
    assert len(set(a1.instance_ids.tolist()) & set(a0.instance_ids.tolist())) == T
    assert b0.instance_ids.min() > max(a0.instance_ids.max(), a1.instance_ids.max())  # nothing inherited
    assert len(set(b1.instance_ids.tolist()) & set(b0.instance_ids.tolist())) == T
    gap = make_frames(1) + make_frames(1, start=90)  # 3 s later: beyond max_time_interval (2 s)
    g0, g1 = stream_scene(confident, gap, num_top=N)
    assert not set(g1.instance_ids.tolist()) & set(g0.instance_ids.tolist())


def test_only_tracked_queries_are_emitted(model):
    model.reset(restart_ids=True)
    biases = [layer.cls_layers[-1].bias for layer in model.decoder.layers if hasattr(layer, "cls_layers")]
    saved = [b.detach().clone() for b in biases]
    try:
        with torch.no_grad():
            for b in biases:
                b.fill_(-10.0)  # nobody reaches the model's id threshold (0.05)
        (pred,) = stream_scene(model, make_frames(1), score_threshold=0.0, num_top=N)
    finally:
        with torch.no_grad():
            for b, s in zip(biases, saved, strict=True):
                b.copy_(s)
    assert len(pred) == 0 and pred.boxes_3d.shape == (0, 10) and pred.instance_feats.shape == (0, CFG.embed_dims)


def test_score_threshold_and_num_top(confident):
    (pred,) = stream_scene(confident, make_frames(1), num_top=5)
    assert len(pred) == 5
    (none,) = stream_scene(confident, make_frames(1), score_threshold=1.0, num_top=N)
    assert len(none) == 0
