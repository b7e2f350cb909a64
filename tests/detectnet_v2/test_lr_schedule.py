"""TAO soft-start annealing learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from visionops.training.lr_schedule import soft_start_annealing, soft_start_annealing_lambda

MIN, MAX, TOTAL = 5e-6, 5e-4, 1000


def lr(step, **kw):
    return soft_start_annealing(step, TOTAL, MIN, MAX, **kw)


def test_key_points():
    assert lr(0) == pytest.approx(MIN, rel=1e-12)
    assert lr(100) == pytest.approx(MAX, rel=1e-12)  # p = soft_start
    assert lr(400) == pytest.approx(MAX, rel=1e-12)  # plateau
    assert lr(700) == pytest.approx(MAX, rel=1e-12)  # p = annealing: still on the plateau
    assert lr(TOTAL) == pytest.approx(MIN, rel=1e-12)
    assert lr(TOTAL + 50) == pytest.approx(MIN, rel=1e-12)  # clamped past the end


def test_log_linear_ramps():
    # Midpoint of the ramp up (p = 0.05) and of the ramp down (p = 0.85): geometric mean of min and max.
    assert lr(50) == pytest.approx(math.sqrt(MIN * MAX), rel=1e-12)
    assert lr(850) == pytest.approx(math.sqrt(MIN * MAX), rel=1e-12)
    # Linear in log space: equal steps multiply the lr by a constant factor.
    ups = [math.log(lr(s)) for s in range(0, 101, 10)]
    downs = [math.log(lr(s)) for s in range(700, 1001, 30)]
    for seq in (ups, downs):
        diffs = [b - a for a, b in zip(seq, seq[1:], strict=False)]
        assert max(diffs) == pytest.approx(min(diffs), rel=1e-9)
    assert all(lr(s) < lr(s + 1) for s in range(0, 100)) and all(lr(s) > lr(s + 1) for s in range(700, 1000))


def test_degenerate_phases():
    assert lr(0, soft_start=0.0) == pytest.approx(MAX)  # no soft start
    assert lr(TOTAL, annealing=1.0) == pytest.approx(MAX)  # never annealed
    assert soft_start_annealing(3, 10, 1e-3, 1e-3) == pytest.approx(1e-3)  # min == max: constant


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"soft_start": 0.8, "annealing": 0.7}, "soft_start <= annealing"),
        ({"soft_start": -0.1}, "0 <= soft_start"),
        ({"annealing": 1.5}, "annealing <= 1"),
        ({"min_lr": 0.0}, "0 < min_lr <= max_lr"),
        ({"min_lr": 1e-3, "max_lr": 1e-4}, "0 < min_lr <= max_lr"),
        ({"total_steps": 0}, "total_steps"),
    ],
)
def test_argument_validation(kwargs, match):
    args = {"total_steps": TOTAL, "min_lr": MIN, "max_lr": MAX} | kwargs
    with pytest.raises(ValueError, match=match):
        soft_start_annealing(0, **args)
    with pytest.raises(ValueError, match=match):
        soft_start_annealing_lambda(**args)


def test_negative_step_rejected():
    with pytest.raises(ValueError, match="step must be >= 0"):
        lr(-1)


def test_lambda_lr_integration():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=MAX)
    sched = LambdaLR(opt, soft_start_annealing_lambda(TOTAL, MIN, MAX))
    seen = []
    for _ in range(TOTAL):
        seen.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        param.sum().backward()
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr(s) for s in range(TOTAL)], rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(MIN)  # after the last step
