"""Instance bank: temporal cache with decay, update order, projection, resets, and instance ids."""

from __future__ import annotations

import math

import torch

from visionops.models.sparse4d.box_state import COS_YAW, SIN_YAW
from visionops.models.sparse4d.instance_bank import InstanceBank, lattice_anchors, project_anchors

N, T, C = 6, 3, 4


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _cls(probs) -> torch.Tensor:
    """(B, N) probabilities -> (B, N, 2) logits whose max is that probability."""
    probs = torch.as_tensor(probs, dtype=torch.float32)
    logits = torch.log(probs / (1 - probs))
    return torch.stack([logits, logits - 3.0], dim=-1)


def _bank(**kw) -> InstanceBank:
    return InstanceBank(N, C, num_temp_instances=T, confidence_decay=0.8, **kw)


def _frame_features(b=1, offset=0.0):
    feature = torch.arange(b * N * C, dtype=torch.float32).reshape(b, N, C) + offset
    anchor = lattice_anchors(N)[None].repeat(b, 1, 1)
    anchor[..., 0] += offset
    return feature, anchor


def test_fresh_ids_for_confident_queries_then_carried_for_cached_ones():
    bank = _bank()
    frame = bank.get(1, torch.tensor([0.0]), ["s"])
    assert frame.temp_feature is None and not frame.mask.any()
    feature, anchor = _frame_features()
    probs = [[0.9, 0.01, 0.6, 0.02, 0.7, 0.3]]
    ids = bank.cache(feature, anchor, _cls(probs), track=True, id_threshold=0.05)
    assert ids.tolist() == [[0, -1, 1, -1, 2, 3]]  # counter order: sample-major, query index ascending
    assert bank.cached_ids.tolist() == [[0, 1, 2]]  # top-3 confidences 0.9, 0.7, 0.6, kept in query order
    torch.testing.assert_close(bank.cached_feature, feature[:, [0, 2, 4]])

    frame = bank.get(1, torch.tensor([1 / 30]), ["s"])
    assert frame.mask.tolist() == [True]
    torch.testing.assert_close(frame.time_interval, torch.tensor([1 / 30]))
    new_feature, new_anchor = _frame_features(offset=100.0)
    mixed_f, mixed_a = bank.update(new_feature, new_anchor, _cls([[0.1, 0.2, 0.3, 0.9, 0.8, 0.05]]))
    # cached first (in cache order), then the top N - T = 3 current ones by max logit, in query order.
    torch.testing.assert_close(mixed_f, torch.cat([feature[:, [0, 2, 4]], new_feature[:, [2, 3, 4]]], dim=1))
    assert mixed_a.shape == (1, N, 11)
    ids = bank.cache(mixed_f, mixed_a, _cls([[0.5, 0.01, 0.5, 0.9, 0.02, 0.01]]), track=True, id_threshold=0.05)
    assert ids.tolist() == [[0, 1, 2, 4, -1, -1]]  # 0..T-1 inherit (even below threshold); one fresh id
    assert bank.next_id == 5


def test_cache_keeps_decayed_confidence_of_carried_instances():
    bank = _bank()
    bank.get(1, torch.tensor([0.0]))
    feature, anchor = _frame_features()
    bank.cache(feature, anchor, _cls([[0.9, 0.8, 0.7, 0.1, 0.1, 0.1]]))
    torch.testing.assert_close(bank.confidence, torch.tensor([[0.9, 0.8, 0.7]]))
    bank.get(1, torch.tensor([0.1]))
    f2, a2 = bank.update(feature, anchor, _cls([[0.1] * N]))
    # Now: carried slots score 0.05 but keep 0.8 * previous; a new slot at 0.65 beats the decayed 0.56.
    bank.cache(f2, a2, _cls([[0.05, 0.05, 0.05, 0.65, 0.1, 0.1]]))
    # The top 3 (0.72, 0.65, 0.64) are kept in query order.
    torch.testing.assert_close(bank.confidence, torch.tensor([[0.72, 0.64, 0.65]]))
    torch.testing.assert_close(bank.cached_feature, f2[:, [0, 1, 3]])


def test_scene_change_resets_but_keeps_the_id_counter():
    bank = _bank()
    feature, anchor = _frame_features()
    bank.get(1, torch.tensor([5.0]), ["scene_a"])
    bank.cache(feature, anchor, _cls([[0.9] * N]), track=True, id_threshold=0.05)
    assert bank.next_id == N
    frame = bank.get(1, torch.tensor([0.0]), ["scene_b"])  # timestamps restart per scene: dt alone can't tell
    assert frame.temp_feature is None and bank.cached_feature is None
    ids = bank.cache(feature, anchor, _cls([[0.9] * N]), track=True, id_threshold=0.05)
    assert ids.min() == N  # fresh ids continue the counter
    bank.reset()
    bank.get(1, torch.tensor([0.0]), ["scene_b"])
    assert bank.cache(feature, anchor, _cls([[0.9] * N]), track=True, id_threshold=0.05).min() == 2 * N
    bank.reset_ids()
    assert bank.next_id == 0


def test_per_sample_validity_batch_size_change_and_long_gaps():
    bank = _bank()
    feature, anchor = _frame_features(b=2)
    bank.get(2, torch.tensor([0.0, 0.0]), ["a", "b"])
    bank.cache(feature, anchor, _cls([[0.9] * N, [0.9] * N]), track=True, id_threshold=0.05)
    frame = bank.get(2, torch.tensor([0.1, 0.0]), ["a", "c"])
    assert frame.mask.tolist() == [True, False]
    torch.testing.assert_close(frame.time_interval, torch.tensor([0.1, 1 / 30]))  # dt 0 or invalid -> default
    new_f, new_a = _frame_features(b=2, offset=50.0)
    mixed_f, _ = bank.update(new_f, new_a, _cls([[0.5] * N, [0.5] * N]))
    torch.testing.assert_close(mixed_f[1], new_f[1])  # invalid sample keeps its own queries
    ids = bank.cache(mixed_f, new_a, _cls([[0.9] * N, [0.9] * N]), track=True, id_threshold=0.05)
    assert ids[0, :T].max() < 2 * N and ids[1].min() >= 2 * N  # sample 1 got only fresh ids
    assert bank.get(3, torch.zeros(3)).temp_feature is None  # batch size change -> reset
    bank.cache(*_frame_features(b=3), _cls([[0.5] * N] * 3))
    assert bank.get(3, torch.full((3,), 2.5)).temp_feature is None  # gap > 2 s


def test_update_passes_dn_queries_through():
    bank = _bank()
    feature, anchor = _frame_features()
    bank.get(1, torch.tensor([0.0]))
    bank.cache(feature, anchor, _cls([[0.9] * N]))
    bank.get(1, torch.tensor([0.1]))
    dn_f, dn_a = torch.randn(1, 4, C), torch.randn(1, 4, 11)
    cls = torch.cat([_cls([[0.5] * N]), torch.full((1, 4, 2), 9.0)], dim=1)  # DN logits must not win the top-k
    f, a = bank.update(torch.cat([feature, dn_f], 1), torch.cat([anchor, dn_a], 1), cls)
    torch.testing.assert_close(f[:, N:], dn_f)
    torch.testing.assert_close(a[:, N:], dn_a)


def test_projection_constant_velocity_and_yaw_order():
    anchor = torch.zeros(1, 1, 11)
    anchor[..., :3] = torch.tensor([1.0, 0.0, 0.5])
    anchor[..., COS_YAW] = 1.0  # yaw 0
    anchor[..., 8:] = torch.tensor([2.0, -1.0, 0.0])
    moved = project_anchors(anchor, torch.tensor([0.5]))
    torch.testing.assert_close(moved[0, 0, :3], torch.tensor([2.0, -0.5, 0.5]))
    rot90 = torch.eye(4)[None]
    rot90[0, :2, :2] = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    turned = project_anchors(anchor, torch.tensor([0.0]), rot90)[0, 0]
    torch.testing.assert_close(turned[:3], torch.tensor([0.0, 1.0, 0.5]))
    torch.testing.assert_close(turned[[SIN_YAW, COS_YAW]], torch.tensor([1.0, 0.0]))  # yaw 90 deg as [sin, cos]
    torch.testing.assert_close(turned[8:], torch.tensor([1.0, 2.0, 0.0]))


def test_get_projects_the_cache_and_anchors_are_parameters():
    bank = _bank()
    assert bank.anchor.requires_grad and not bank.instance_feature.requires_grad
    assert "anchor" in bank.state_dict() and "cached_anchor" not in bank.state_dict()
    feature, anchor = _frame_features()
    anchor[..., 8] = 3.0  # vx = 3 m/s
    bank.get(1, torch.tensor([10.0]))
    bank.cache(feature, anchor, _cls([[0.9, 0.8, 0.7, 0.1, 0.1, 0.1]]))
    frame = bank.get(1, torch.tensor([10.5]))
    torch.testing.assert_close(frame.temp_anchor[0, :, 0], anchor[0, :3, 0] + 1.5)
