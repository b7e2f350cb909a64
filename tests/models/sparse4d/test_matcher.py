"""Hungarian matcher: optimal (vs brute force), the brief's cost, yaw/velocity-blind, robust to M=0 and NaN."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visionops.models.sparse4d.box_state import encode_gt
from visionops.models.sparse4d.loss_config import Sparse4DLossConfig
from visionops.models.sparse4d.matcher import INVALID_COST, HungarianMatcher, box_cost, focal_class_cost


def _problem(seed: int, n: int, m: int, c: int = 3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2
    pred = torch.randn(n, 11, generator=g)
    gt = encode_gt(torch.rand(m, 7, generator=g) * 3 + 0.2, torch.randn(m, 3, generator=g))
    labels = torch.randint(0, c, (m,), generator=g)
    return logits, pred, labels, gt


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 5), m=st.integers(1, 4))
def test_matches_brute_force_minimum(seed, n, m):
    logits, pred, labels, gt = _problem(seed, n, m)
    matcher = HungarianMatcher()
    cost = matcher.cost(logits, pred, labels, gt).double()
    pred_idx, gt_idx = matcher.match_one(logits, pred, labels, gt)
    assert len(pred_idx) == min(n, m)
    assert len(set(pred_idx.tolist())) == len(pred_idx) and len(set(gt_idx.tolist())) == len(gt_idx)
    got = cost[pred_idx, gt_idx].sum().item()
    if m <= n:  # every GT gets a distinct query
        best = min(sum(cost[q, j].item() for j, q in enumerate(perm)) for perm in itertools.permutations(range(n), m))
    else:  # every query gets a distinct GT
        best = min(sum(cost[i, j].item() for i, j in enumerate(perm)) for perm in itertools.permutations(range(m), n))
    assert got == pytest.approx(best, abs=1e-5)


def test_cost_is_the_briefs_formula():
    logit, c = 0.3, 2
    logits = torch.tensor([[-1.0, 2.0, logit]])
    pred = torch.tensor([[1.0, 2.0, 3.0, 0.1, 0.2, 0.3, 0.5, 0.5, 9.0, 9.0, 9.0]])
    gt = torch.tensor([[1.5, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    p = 1 / (1 + math.exp(-logit))
    cls = 2.0 * (0.25 * (1 - p) ** 2 * -math.log(p) - 0.75 * p**2 * -math.log(1 - p))
    box = 0.25 * (2 * (0.5 + 1.0 + 0.0) + 0.5 * (0.1 + 0.2 + 0.3))
    got = HungarianMatcher().cost(logits, pred, torch.tensor([c]), gt)
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(cls + box, rel=1e-5)
    assert focal_class_cost(logits, torch.tensor([c])).item() == pytest.approx(cls, rel=1e-5)


def test_cost_ignores_yaw_and_velocity():
    logits, pred, labels, gt = _problem(1, 6, 3)
    matcher = HungarianMatcher()
    base = matcher.cost(logits, pred, labels, gt)
    pred2, gt2 = pred.clone(), gt.clone()
    pred2[:, 6:] = torch.randn(6, 5) * 10
    gt2[:, 6:] = torch.randn(3, 5) * 10
    pred2[0, 8] = float("nan")  # a NaN velocity must not poison the cost either
    assert torch.equal(matcher.cost(logits, pred2, labels, gt2), base)
    far, farther = pred.clone(), pred.clone()
    far[:, 0], farther[:, 0] = 100.0, 101.0  # ... while the centre counts: 1 m more x costs 0.25 * 2 * 1
    delta = matcher.cost(logits, farther, labels, gt) - matcher.cost(logits, far, labels, gt)
    assert torch.allclose(delta, torch.full_like(delta, 0.5), atol=1e-4)


def test_nan_gt_dimension_is_ignored_not_poisoning():
    logits, pred, labels, gt = _problem(2, 4, 2)
    gt_nan = gt.clone()
    gt_nan[0, 4] = float("nan")  # unknown length of GT 0
    weights = torch.isfinite(gt_nan).float()
    reg = torch.tensor(Sparse4DLossConfig().cost_reg_weights)
    cost = box_cost(pred, gt_nan, weights, reg)
    assert torch.isfinite(cost).all()
    full = box_cost(pred, gt, torch.ones_like(gt), reg)
    assert torch.allclose(cost[:, 0], full[:, 0] - 0.25 * 0.5 * (pred[:, 4] - gt[0, 4]).abs(), atol=1e-5)
    assert torch.allclose(cost[:, 1], full[:, 1], atol=1e-5)


def test_nan_prediction_gets_invalid_cost_and_is_not_matched():
    logits, pred, labels, gt = _problem(3, 4, 2)
    pred[1, 0] = float("nan")
    pred_idx, gt_idx = HungarianMatcher().match_one(logits, pred, labels, gt)
    assert 1 not in pred_idx.tolist() and sorted(gt_idx.tolist()) == [0, 1]
    assert INVALID_COST == 1e8


def test_batch_with_empty_sample():
    logits, pred, labels, gt = _problem(4, 5, 3)
    out = HungarianMatcher()(torch.stack([logits, logits]), torch.stack([pred, pred]),
                             [labels, labels[:0]], [gt, gt[:0]])
    assert [len(p) for p, _ in out] == [3, 0]
    assert out[1][0].dtype == torch.int64
    assert torch.equal(out[0][0], out[0][0].sort().values)  # pred_idx ascending


def test_rejects_bad_labels():
    logits, pred, labels, gt = _problem(5, 3, 2)
    with pytest.raises(ValueError, match="gt_labels"):
        HungarianMatcher().match_one(logits, pred, torch.tensor([0, 3]), gt)
