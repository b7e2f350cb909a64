"""Sparse4DModule pieces called directly (no Trainer): the training step, optimizer groups, the schedule, the
temporal state carried across steps, GridMask, depth targets and the validation matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sparse4d_synthetic import TINY, batch

from visionops.training.sparse4d_module import (
    COSINE_END,
    WARMUP_START,
    Sparse4DModule,
    depth_targets,
    grid_mask,
    match_centres,
    warmup_cosine,
)


@pytest.fixture(scope="module")
def module():
    torch.manual_seed(0)
    return Sparse4DModule(TINY, lr=1e-3, backbone_lr_mult=0.25, total_steps=100, warmup_steps=10)


def test_training_step_is_finite_with_every_loss_term(module):
    module.train()
    module.reset_streams()
    loss = module.training_step(batch(0), 0)
    terms = set(module.last_losses)
    for layer in range(TINY.num_decoder):
        assert {f"layer{layer}_{t}" for t in ("cls", "box", "cns", "yns", "dn_cls", "dn_box")} <= terms
    assert {"depth", "total"} <= terms
    assert torch.isfinite(loss.detach()) and float(module.last_losses["depth"]) > 0
    module.zero_grad()
    loss.backward()
    grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert float(grads["model.backbone.conv1.weight"].abs().sum()) > 0


def test_optimizer_groups_carry_the_backbone_multiplier(module):
    opt = module.configure_optimizers()["optimizer"]
    head, backbone = opt.param_groups
    assert (head["name"], backbone["name"]) == ("head", "backbone")
    assert head["initial_lr"] == pytest.approx(1e-3) and backbone["initial_lr"] == pytest.approx(2.5e-4)
    assert head["weight_decay"] == backbone["weight_decay"] == pytest.approx(1e-3)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == trainable
    assert {id(p) for p in backbone["params"]} == {id(p) for p in module.model.backbone.parameters()}


def test_schedule_is_linear_warmup_then_cosine(module):
    module.zero_grad(set_to_none=True)  # no gradients: optimizer steps only advance the schedule
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(101):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    head = np.array([lr[0] for lr in lrs])
    assert head[0] == pytest.approx(1e-3 * WARMUP_START)
    assert head[5] == pytest.approx(1e-3 * (WARMUP_START + (1 - WARMUP_START) * 0.5))
    assert head[10] == pytest.approx(1e-3) and np.all(np.diff(head[:11]) > 0) and np.all(np.diff(head[10:]) < 0)
    assert head[55] == pytest.approx(1e-3 * (COSINE_END + (1 - COSINE_END) * 0.5))
    assert head[100] == pytest.approx(1e-3 * COSINE_END)
    np.testing.assert_allclose([lr[1] for lr in lrs], head * 0.25)
    assert warmup_cosine(500, 100, 10) == pytest.approx(COSINE_END)  # held after the end
    assert warmup_cosine(0, 100, 0) == pytest.approx(1.0)


def test_streams_carry_the_bank_and_temporal_dn_and_reset_per_slot(module):
    module.train()
    module.reset_streams()
    gen = module.denoising
    calls = []
    original = gen.temporal_update

    def spy(features, anchors, targets, *args):
        cached = None if gen.cached is None else gen.cached.instance_ids.clone()
        out = original(features, anchors, targets, *args)
        calls.append((args[-1].tolist(), cached, targets, out[2]))
        return out

    gen.temporal_update = spy
    try:
        # two streams: slot 0 plays scene a, slot 1 switches from scene b to scene c at the third step
        for step, (frames, scenes) in enumerate([([0, 5], ["a", "b"]), ([1, 6], ["a", "b"]), ([2, 0], ["a", "c"])]):
            loss = module.training_step(batch(frames, scenes), step)
            assert torch.isfinite(loss)
            assert module.model.instance_bank.cached_feature.shape == (2, TINY.num_temp_instances, TINY.embed_dims)
            assert gen.cached is not None and gen.cached.features.shape[:2] == (2, TINY.num_temp_dn_groups)
    finally:
        del gen.temporal_update
    assert [c[0] for c in calls] == [[False, False], [True, True], [True, False]]
    _, cached, fresh, merged = calls[1]
    tg = TINY.num_temp_dn_groups
    b, g = merged.labels.shape[0], merged.num_groups
    ids = merged.instance_ids.reshape(b, g, -1)
    assert torch.equal(ids[:, :tg], cached), "the cached DN groups replace the first groups of valid streams"
    assert torch.equal(ids[:, tg:], fresh.instance_ids.reshape(b, g, -1)[:, tg:])
    found = merged.labels.reshape(b, g, -1)[:, :tg][ids[:, :tg] >= 0]
    assert (found >= 0).all(), "ids still present in the next frame get their class as target"
    _, cached, fresh, merged = calls[2]
    assert torch.equal(merged.instance_ids[1], fresh.instance_ids[1]), "the slot that changed scene keeps fresh DN"


def test_grid_mask_drops_squares_with_one_mask_for_the_batch():
    images = torch.ones(2, 3, 3, 64, 128)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(grid_mask(images, gen, prob=0.0), images)
    masked = grid_mask(images, gen, prob=1.0)
    dropped = 1 - masked.mean()
    assert 0.05 < float(dropped) < 0.5  # (d - l)^2 / d^2 with l = d/2 -> about a quarter
    assert torch.equal(masked[0, 0], masked[1, 2]) and set(masked.unique().tolist()) <= {0.0, 1.0}


def test_depth_targets_take_the_nearest_valid_depth_per_cell():
    d = torch.tensor([[0.0, 5.0, 0.0, 0.0], [3.0, 4.0, 0.0, 0.0], [7.0, 7.0, 2.0, 9.0], [7.0, 7.0, 9.0, 9.0]])
    levels = depth_targets(d[None, None], [(2, 2), (1, 1), (3, 3)])
    assert levels[0].shape == (1, 2, 2)
    assert levels[0][0].tolist() == [[3.0, 0.0], [7.0, 2.0]]
    assert levels[1][0].tolist() == [[2.0]]
    assert levels[2].shape == (1, 3, 3) and float(levels[2].max()) <= 9.0


def test_match_centres_is_one_to_one_class_aware_and_gated():
    pred = np.array([[0.0, 0, 0], [0.5, 0, 0], [10.0, 0, 0], [0.0, 1.0, 0]])
    gt = np.array([[0.2, 0, 0], [10.0, 1.0, 0], [0.0, 3.0, 0]])
    dist = match_centres(pred, np.array([0, 0, 0, 1]), gt, np.array([0, 0, 0]))
    assert sorted(np.round(dist, 3).tolist()) == [0.2, 1.0]  # pred 3 has the wrong class
    assert len(match_centres(pred[:0], np.zeros(0), gt, np.zeros(3))) == 0


def test_validation_step_streams_in_eval_mode_and_accumulates(module):
    module.eval()
    module.on_validation_epoch_start()
    with torch.no_grad():
        for t in range(2):
            module.validation_step(batch(t, "val"), t)
    loss_sum, frames, matched, gts, dets, _ = module._val.tolist()
    assert frames == 2 and gts == 6 and math.isfinite(loss_sum) and 0 <= matched <= min(gts, dets)
    assert module.model.instance_bank.cached_ids is not None, "eval mode assigns instance ids"
    assert module.preview["images"].shape == (2, 3, 64, 128) and module.preview["gt"].shape == (3, 10)


def test_steps_under_bf16_autocast_keep_losses_and_temporal_state_fp32():
    # CPU bf16 autocast stands in for CUDA bf16-mixed: the dtype paths (bank, DN cache, criterion) are the same
    torch.manual_seed(0)
    module = Sparse4DModule(TINY, total_steps=10, warmup_steps=0)
    module.train()
    for t in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module.training_step(batch([t, t], ["a", "b"]), t)
        loss.backward()
        assert loss.dtype == torch.float32 and torch.isfinite(loss.detach())
    assert module.model.instance_bank.cached_anchor.dtype == torch.float32
    assert module.denoising.cached.anchors.dtype == torch.float32
