"""DetectNet_v2 loss: TAO's weighted coverage BCE, cov_norm-weighted bbox L1, weights, L1 regularisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from visionops.models.detectnet_v2.loss import AutoWeighting, DetectNetLoss, check_finite, l1_regularization


def random_batch(n=2, c=3, h=4, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    cov = torch.rand(n, c, h, w, generator=g) * (torch.rand(n, c, h, w, generator=g) > 0.5)
    targets = {"cov": cov, "cov_norm": cov * 0.1, "bbox": torch.randn(n, 4 * c, h, w, generator=g)}
    return torch.randn(n, c, h, w, generator=g), torch.randn(n, 4 * c, h, w, generator=g), targets


def test_zero_bbox_loss_when_predictions_equal_targets():
    logits, _, targets = random_batch()
    out = DetectNetLoss(3)(logits, targets["bbox"].clone(), targets)
    assert out["bbox"].item() == 0.0 and (out["per_class_bbox"] == 0).all()
    assert out["total"].item() == pytest.approx(out["cov"].item())


def test_coverage_loss_hand_computation_1x1x2x2():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    target = torch.tensor([[[[1.0, 0.25], [0.75, 0.0]]]])
    targets = {"cov": target, "cov_norm": torch.zeros_like(target), "bbox": torch.zeros(1, 4, 2, 2)}
    out = DetectNetLoss(1)(logits, torch.zeros(1, 4, 2, 2), targets)

    def bce(x, t):
        p = 1 / (1 + math.exp(-x))
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))

    # target > 0.5 (1.0 and 0.75) gets the foreground weight 0.05, the rest 0.95; mean over the 4 cells.
    expected = (0.05 * bce(0.0, 1.0) + 0.95 * bce(2.0, 0.25) + 0.05 * bce(-1.0, 0.75) + 0.95 * bce(3.0, 0.0)) / 4
    assert out["per_class_cov"].item() == pytest.approx(expected, rel=1e-6)
    assert out["cov"].item() == pytest.approx(expected / 11, rel=1e-6)  # objective weights 1:10 -> 1/11
    # TAO's form (sigmoid, eps 1e-5 inside the logs) agrees up to the eps.
    p, eps = torch.sigmoid(logits), 1e-5
    tao = -(target * torch.log(p + eps) + (1 - target) * torch.log(1 - p + eps))
    tao = (torch.where(target > 0.5, 0.05, 0.95) * tao).mean()
    assert out["per_class_cov"].item() == pytest.approx(tao.item(), abs=1e-4)


def test_bbox_loss_is_cov_norm_weighted_l1_mean_over_4hw():
    targets = {"cov": torch.zeros(1, 1, 1, 2), "cov_norm": torch.tensor([[[[0.5, 0.0]]]]),
               "bbox": torch.zeros(1, 4, 1, 2)}
    pred = torch.zeros(1, 4, 1, 2)
    pred[0, :, 0, 0] = torch.tensor([1.0, -2.0, 3.0, 0.5])  # weighted by 0.5
    pred[0, :, 0, 1] = 100.0  # weight 0: ignored
    out = DetectNetLoss(1)(torch.zeros(1, 1, 1, 2), pred, targets)
    assert out["per_class_bbox"].item() == pytest.approx(0.5 * 6.5 / 8)
    assert out["bbox"].item() == pytest.approx(0.5 * 6.5 / 8 * 10 / 11)


def test_class_and_objective_weight_normalisation():
    loss = DetectNetLoss(3, class_weights=[1.0, 8.0, 4.0], objective_weights=[(1, 10), (1, 1), (3, 1)])
    torch.testing.assert_close(loss.class_weights, torch.tensor([1 / 13, 8 / 13, 4 / 13]))
    torch.testing.assert_close(loss.objective_weights, torch.tensor([[1 / 11, 10 / 11], [0.5, 0.5], [0.75, 0.25]]))
    logits, bbox, targets = random_batch()
    out = loss(logits, bbox, targets)
    cov = sum(loss.class_weights[c] * loss.objective_weights[c, 0] * out["per_class_cov"][c] for c in range(3))
    box = sum(loss.class_weights[c] * loss.objective_weights[c, 1] * out["per_class_bbox"][c] for c in range(3))
    torch.testing.assert_close(out["cov"], cov)
    torch.testing.assert_close(out["bbox"], box)
    torch.testing.assert_close(out["total"], cov + box)
    # Scaling all class weights changes nothing; default = equal weights.
    same = DetectNetLoss(3, class_weights=[2.0, 16.0, 8.0], objective_weights=[(1, 10), (1, 1), (3, 1)])
    torch.testing.assert_close(same(logits, bbox, targets)["total"], out["total"])
    torch.testing.assert_close(DetectNetLoss(3).class_weights, torch.full((3,), 1 / 3))


def test_per_class_costs_are_per_class():
    logits, bbox, targets = random_batch()
    out = DetectNetLoss(3)(logits, bbox, targets)
    single = DetectNetLoss(1)(logits[:, 1:2], bbox[:, 4:8],
                              {"cov": targets["cov"][:, 1:2], "cov_norm": targets["cov_norm"][:, 1:2],
                               "bbox": targets["bbox"][:, 4:8]})
    torch.testing.assert_close(out["per_class_cov"][1], single["per_class_cov"][0])
    torch.testing.assert_close(out["per_class_bbox"][1], single["per_class_bbox"][0])


def test_gradients_flow_to_both_heads():
    logits, bbox, targets = random_batch()
    logits.requires_grad_(True)
    bbox.requires_grad_(True)
    DetectNetLoss(3)(logits, bbox, targets)["total"].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert torch.isfinite(bbox.grad).all() and bbox.grad.abs().sum() > 0
    assert (bbox.grad.view(2, 3, 4, 4, 5)[targets["cov_norm"].unsqueeze(2).expand(-1, -1, 4, -1, -1) == 0] == 0).all()


def test_shape_errors():
    logits, bbox, targets = random_batch()
    loss = DetectNetLoss(3)
    with pytest.raises(ValueError, match="num_classes=4"):
        DetectNetLoss(4)(logits, bbox, targets)
    with pytest.raises(ValueError, match="bbox_pred"):
        loss(logits, bbox[:, :8], targets)
    with pytest.raises(KeyError, match="cov_norm"):
        loss(logits, bbox, {"cov": targets["cov"], "bbox": targets["bbox"]})
    with pytest.raises(ValueError, match="class_weights"):
        DetectNetLoss(3, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="objective_weights"):
        DetectNetLoss(3, objective_weights=(1.0, 2.0, 3.0))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)  # weight 108 + bias 4
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 2, 1, bias=False)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(self.conv2(self.bn(self.conv1(x))).mean((2, 3)))


def test_l1_regularization_counts_conv_weights_and_biases_not_bn():
    net = _Net()
    with torch.no_grad():
        net.bn.weight.fill_(5.0)
        net.bn.bias.fill_(-7.0)
    expected = 3e-9 * (net.conv1.weight.abs().sum() + net.conv1.bias.abs().sum() + net.conv2.weight.abs().sum())
    reg = l1_regularization(net, 3e-9)
    assert reg.item() == pytest.approx(expected.item(), rel=1e-6)
    reg.backward()
    torch.testing.assert_close(net.conv1.bias.grad, 3e-9 * torch.sign(net.conv1.bias))
    torch.testing.assert_close(net.conv2.weight.grad, 3e-9 * torch.sign(net.conv2.weight))
    assert net.bn.weight.grad is None and net.bn.bias.grad is None and net.fc.weight.grad is None
    assert l1_regularization(net, 0.0).item() == 0.0
    assert DetectNetLoss(2, l1_weight=1e-3).regularization(net).item() == pytest.approx(expected.item() / 3e-9 * 1e-3,
                                                                                         rel=1e-6)


def test_check_finite_names_the_term_and_step():
    check_finite({"total": torch.tensor(1.0), "per_class_cov": torch.ones(3)}, step=3)  # no error
    with pytest.raises(FloatingPointError, match=r"'bbox' is nan at step 17"):
        check_finite({"total": torch.tensor(1.0), "bbox": torch.tensor(float("nan"))}, step=17)
    with pytest.raises(FloatingPointError, match=r"'per_class_cov' is non-finite at step 4 \(index \[1\]"):
        check_finite({"per_class_cov": torch.tensor([0.1, float("inf"), 0.2])}, step=4)


def test_auto_weighting_disabled_by_default_is_a_no_op():
    loss = DetectNetLoss(2)
    before = loss.objective_weights.clone()
    auto = AutoWeighting(2)
    auto.accumulate({"per_class_cov": torch.ones(2), "per_class_bbox": torch.ones(2)})
    auto.epoch_end(loss)
    torch.testing.assert_close(loss.objective_weights, before)
    assert (auto.cost_sums == 0).all()


def test_auto_weighting_epoch_end():
    loss = DetectNetLoss(3)
    auto = AutoWeighting(3, weight_targets=[(1.0, 10.0), (1.0, 1.0), (1.0, 1.0)], enabled=True)
    for cov_cost, bbox_cost in ((0.2, 0.01), (0.4, 0.03)):  # sums: cov 0.6, bbox 0.04
        auto.accumulate({"per_class_cov": torch.tensor([cov_cost, cov_cost, 0.0]),
                         "per_class_bbox": torch.tensor([bbox_cost, bbox_cost, 0.0])})
    weights = auto.epoch_end(loss)
    # class 0: 1/0.6 : 10/0.04 -> normalised; class 1: 1/0.6 : 1/0.04; class 2: zero sums keep the old weights.
    raw0, raw1 = torch.tensor([1 / 0.6, 10 / 0.04]), torch.tensor([1 / 0.6, 1 / 0.04])
    torch.testing.assert_close(weights[0], (raw0 / raw0.sum()).float())
    torch.testing.assert_close(weights[1], (raw1 / raw1.sum()).float())
    torch.testing.assert_close(weights[2], torch.tensor([1 / 11, 10 / 11]))
    assert weights is loss.objective_weights and (auto.cost_sums == 0).all()
    # Contribution ratio w_bbox * bbox_sum : w_cov * cov_sum equals the target ratio (10 for class 0).
    assert (weights[0, 1] * 0.04 / (weights[0, 0] * 0.6)).item() == pytest.approx(10.0, rel=1e-5)
    # Clamping to [1e-4, 0.9999].
    auto.accumulate({"per_class_cov": torch.tensor([1.0, 1.0, 1.0]), "per_class_bbox": torch.tensor([1e-9] * 3)})
    weights = auto.epoch_end(loss)
    torch.testing.assert_close(weights[0], torch.tensor([1e-4, 0.9999]))
    # Objective weights live in a persistent buffer, so a checkpoint restores them.
    assert "objective_weights" in loss.state_dict() and "class_weights" not in loss.state_dict()
