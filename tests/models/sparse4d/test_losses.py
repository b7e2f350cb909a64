"""Sparse4D loss functions against hand-computed values and their masking rules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.models.sparse4d import losses as lf


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_focal_loss_equals_hand_computed_value():
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    labels = torch.tensor([1, 2])  # query 0 is class 1, query 1 is background (label C = 2)
    expected = 0.0
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        for c, x in enumerate(row):
            p = _sig(x)
            if c == label:
                expected += 0.25 * (1 - p) ** 2 * -math.log(p)
            else:
                expected += 0.75 * p**2 * -math.log(1 - p)
    assert lf.sigmoid_focal_loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_focal_loss_labels_outside_range_are_background():
    logits = torch.randn(4, 3)
    background = lf.sigmoid_focal_loss(logits, torch.full((4,), 3))
    for other in (-1, -3, 7):
        assert lf.sigmoid_focal_loss(logits, torch.full((4,), other)).item() == pytest.approx(background.item())
    assert lf.sigmoid_focal_loss(logits, torch.zeros(4, dtype=torch.int64)).item() != pytest.approx(background.item())


@settings(max_examples=20, deadline=None)
@given(x=st.floats(-30, 30), positive=st.booleans())
def test_focal_loss_is_nonnegative_and_finite_for_any_logit(x, positive):
    loss = lf.sigmoid_focal_loss(torch.tensor([[x]]), torch.tensor([0 if positive else 1]))
    assert torch.isfinite(loss) and loss.item() >= 0


def test_box_loss_zero_for_perfect_prediction_and_ignores_nan_gt_dims():
    target = torch.randn(3, 11)
    weights = torch.ones(3, 11)
    assert lf.weighted_l1_loss(target.clone(), target, weights).item() == 0.0
    pred = target + 0.5
    target_nan = target.clone()
    target_nan[1, 9] = float("nan")  # unknown vy of GT 1
    weights[1, 9] = 0.0
    loss = lf.weighted_l1_loss(pred, target_nan, weights)
    assert loss.item() == pytest.approx(0.5 * (33 - 1), rel=1e-5)
    grad_pred = pred.clone().requires_grad_(True)
    lf.weighted_l1_loss(grad_pred, target_nan, weights).backward()
    assert torch.isfinite(grad_pred.grad).all() and grad_pred.grad[1, 9] == 0


def test_centerness_target_is_exp_of_minus_distance():
    pred = torch.tensor([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    gt = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert torch.allclose(lf.centerness_target(pred, gt), torch.tensor([math.exp(-5.0), 1.0]))
    logits = torch.tensor([0.2, -0.4])
    expected = F.binary_cross_entropy_with_logits(logits, torch.tensor([math.exp(-5.0), 1.0]), reduction="sum")
    assert lf.centerness_loss(logits, pred, gt).item() == pytest.approx(expected.item(), rel=1e-6)


def test_centerness_target_gradient_only_on_request():
    pred = torch.tensor([[0.5, 0.2, 0.1]], requires_grad=True)
    gt = torch.zeros(1, 3)
    logit = torch.tensor([1.0], requires_grad=True)
    lf.centerness_loss(logit, pred, gt).backward()
    assert pred.grad is None and logit.grad.abs().sum() > 0
    lf.centerness_loss(logit, pred, gt, target_grad=True).backward()
    assert pred.grad.abs().sum() > 0


def test_yawness_target_flips_with_sign_of_cosine_similarity():
    gt = torch.tensor([[0.0, 1.0]] * 4)
    pred = torch.tensor([[0.3, 2.0], [0.0, -0.5], [1.0, 0.1], [1.0, -0.1]])  # unnormalised sin/cos
    assert lf.yawness_target(pred, gt).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert lf.yawness_target(pred, -gt).tolist() == [0.0, 1.0, 0.0, 1.0]


def test_yawness_loss_is_gaussian_focal_on_sigmoid():
    logits = torch.tensor([0.7, -0.2])
    pred = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    gt = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # targets 1, 0
    p0, p1 = _sig(0.7), _sig(-0.2)
    expected = -math.log(p0) * (1 - p0) ** 2 + -math.log(1 - p1) * p1**2
    assert lf.yawness_loss(logits, pred, gt).item() == pytest.approx(expected, rel=1e-5)


def test_flip_ambiguous_yaw_only_for_listed_classes():
    pred = torch.zeros(2, 11)
    pred[:, 7] = 1.0
    target = torch.zeros(2, 11)
    target[:, 7] = -1.0
    flipped = lf.flip_ambiguous_yaw(pred, target, torch.tensor([0, 1]), classes=(1,))
    assert flipped[0, 7] == -1.0 and flipped[1, 7] == 1.0
    assert lf.flip_ambiguous_yaw(pred, target, torch.tensor([0, 1]), classes=()) is target


def test_depth_loss_ignores_invalid_pixels_and_normalises():
    gt = torch.tensor([[[2.0, 0.0], [0.3, float("nan")]]])  # only pixel (0, 0) is valid (>= 0.5 m, finite)
    pred = torch.tensor([[[[3.0, 9.0], [9.0, 9.0]]]])
    loss = lf.dense_depth_loss([pred], [gt], weight=1.0)
    assert loss.item() == pytest.approx(1.0)
    pred2 = pred.clone()
    pred2[..., 0, 1] = -50.0
    pred2[..., 1, :] = 1000.0
    assert lf.dense_depth_loss([pred2], [gt], weight=1.0).item() == pytest.approx(1.0)
    # two levels: each level / (#valid * #levels); the *target* is clipped to 60 m; x0.2 by default
    level2 = (torch.tensor([[[[100.0]]]]), torch.tensor([[75.0]]))
    two = lf.dense_depth_loss([pred, level2[0]], [gt, level2[1]])
    assert two.item() == pytest.approx(0.2 * (1.0 / 2 + 40.0 / 2))


def test_depth_prediction_past_max_depth_is_pulled_back_and_huge_logits_stay_finite():
    far = torch.tensor([[[[100.0]]]], requires_grad=True)
    lf.dense_depth_loss([far], [torch.tensor([[30.0]])], weight=1.0).backward()
    assert far.grad.item() == pytest.approx(1.0)  # a clipped prediction would get 0 and stay at 100 m
    from visionops.models.sparse4d.depth_head import DenseDepthNet

    head = DenseDepthNet(embed_dims=4, num_depth_layers=1)
    with torch.no_grad():
        head.depth_layers[0].bias.fill_(500.0)  # exp(500) overflows float32
    feature = torch.ones(1, 1, 4, 2, 2, requires_grad=True)
    depth = head([feature])[0]
    assert torch.isfinite(depth).all()
    lf.dense_depth_loss([depth], [torch.full((1, 2, 2), 10.0)]).backward()
    assert torch.isfinite(feature.grad).all()


def test_depth_loss_no_valid_pixel_is_zero_but_nan_prediction_propagates():
    pred = torch.full((1, 1, 2, 2), 5.0)
    assert lf.dense_depth_loss([pred], [torch.zeros(1, 2, 2)]).item() == 0.0
    pred[0, 0, 0, 0] = float("nan")
    assert torch.isnan(lf.dense_depth_loss([pred], [torch.ones(1, 2, 2)]))


def test_id_loss_uses_label_smoothing_and_skips_invalid_ids():
    logits = torch.randn(4, 5)
    ids = torch.tensor([1, -1, 4, 9])
    expected = F.cross_entropy(logits[[0, 2]], ids[[0, 2]], label_smoothing=0.1)
    assert lf.id_loss(logits, ids).item() == pytest.approx(expected.item(), rel=1e-6)
    assert lf.id_loss(logits, torch.full((4,), -1)).item() == 0.0


def test_visibility_loss_is_bce_mean():
    pred = torch.tensor([[0.9, 0.2], [0.5, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.25, 0.0]])
    expected = F.binary_cross_entropy(pred, target)
    assert lf.visibility_loss(pred, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reduce_count_without_distributed_clamps_to_one():
    assert lf.reduce_count(torch.tensor([0.0, 3.0])).tolist() == [1.0, 3.0]
