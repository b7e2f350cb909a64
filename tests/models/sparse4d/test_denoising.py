"""DN queries: noise bounds, one copy per GT per group, padding, masks, determinism, temporal carry-over."""

from __future__ import annotations

import pytest
import torch

from visionops.models.sparse4d.box_state import encode_gt
from visionops.models.sparse4d.denoising import (
    LOST_LABEL,
    NEGATIVE_LABEL,
    DenoisingGenerator,
    dn_attention_mask,
    self_attention_mask,
)
from visionops.models.sparse4d.loss_config import DN_NOISE_SCALE, Sparse4DLossConfig

SCALE = torch.tensor(DN_NOISE_SCALE)


def _gt(seed: int, counts=(4, 2)):
    g = torch.Generator().manual_seed(seed)
    boxes = [encode_gt(torch.rand(m, 7, generator=g) * 20 + 0.5, torch.randn(m, 3, generator=g)) for m in counts]
    labels = [torch.randint(0, 3, (m,), generator=g) for m in counts]
    ids = [torch.randperm(100, generator=g)[:m] for m in counts]
    return boxes, labels, ids


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_layout_noise_bounds_and_padding():
    boxes, labels, ids = _gt(0)
    dn = DenoisingGenerator().generate(boxes, labels, ids, generator=_rng())
    g, k = 5, 4
    assert dn.anchors.shape == (2, g * 2 * k, 11) and dn.targets.group_size == 2 * k
    anchors = dn.anchors.view(2, g, 2, k, 11)  # (B, group, positive/negative, GT slot, dim)
    for b, m in enumerate((4, 2)):
        offset = (anchors[b, :, :, :m] - boxes[b][None, None]).abs() / SCALE  # in noise units
        assert (offset[:, 0] <= 1.0 + 1e-5).all(), "positive copies within one noise unit of their GT"
        assert (offset[:, 1] >= 1.0 - 1e-5).all() and (offset[:, 1] <= 2.0 + 1e-5).all(), "negatives in [1, 2] units"
    valid = dn.targets.valid.view(2, g, 2, k)
    labels_grid = dn.targets.labels.view(2, g, 2, k)
    assert valid[0].all()
    assert valid[1, :, :, :2].all() and not valid[1, :, :, 2:].any(), "padding copies are excluded"
    assert (labels_grid[1, :, :, 2:] == LOST_LABEL).all()


def test_each_gt_gets_exactly_one_copy_per_group():
    boxes, labels, ids = _gt(1, counts=(6, 3, 0))
    t = DenoisingGenerator().generate(boxes, labels, ids, generator=_rng(1)).targets
    grouped = t.grouped()
    lab, box, _, valid, inst, gidx = grouped
    for b, m in enumerate((6, 3, 0)):
        for gi in range(5):
            assigned = gidx[b, gi] >= 0
            assert sorted(gidx[b, gi][assigned].tolist()) == list(range(m))
            j = gidx[b, gi][assigned]
            assert torch.equal(lab[b, gi][assigned], labels[b][j])
            assert torch.allclose(box[b, gi][assigned], boxes[b][j])
            assert torch.equal(inst[b, gi][assigned], ids[b][j])
            others = valid[b, gi] & ~assigned
            assert int(others.sum()) == m and (lab[b, gi][others] == NEGATIVE_LABEL).all()
            assert (inst[b, gi][others] == -1).all()


def test_same_seed_same_queries_other_seed_different():
    boxes, labels, ids = _gt(2)
    gen = DenoisingGenerator()
    a, b, c = (gen.generate(boxes, labels, ids, generator=_rng(s)) for s in (7, 7, 8))
    assert torch.equal(a.anchors, b.anchors) and torch.equal(a.targets.labels, b.targets.labels)
    assert not torch.equal(a.anchors, c.anchors)


def test_attention_masks_block_exactly_the_right_blocks():
    mask = dn_attention_mask(3, 2)
    for i in range(6):
        for j in range(6):
            assert bool(mask[i, j]) == (i // 2 != j // 2)
    full = self_attention_mask(4, mask)
    assert full.shape == (10, 10) and full.dtype == torch.bool
    assert not full[:4, :4].any(), "normal queries see each other"
    assert full[:4, 4:].all() and full[4:, :4].all(), "normal <-> DN blocked both ways"
    assert torch.equal(full[4:, 4:], mask)
    assert self_attention_mask(4, None) is None


def test_max_dn_gt_no_gt_and_no_groups():
    boxes, labels, ids = _gt(3, counts=(7, 1))
    dn = DenoisingGenerator(Sparse4DLossConfig(max_dn_gt=3)).generate(boxes, labels, ids, generator=_rng())
    assert dn.targets.group_size == 6 and set(dn.targets.gt_index[0].tolist()) == {-1, 0, 1, 2}
    empty = [b[:0] for b in boxes], [lab[:0] for lab in labels], [i[:0] for i in ids]
    assert DenoisingGenerator().generate(*empty) is None
    assert DenoisingGenerator(Sparse4DLossConfig(num_dn_groups=0, num_temp_dn_groups=0)).generate(
        boxes, labels, ids) is None


def test_nan_gt_dims_give_finite_anchors_and_zero_weight():
    boxes, labels, ids = _gt(4, counts=(2,))
    boxes[0][1, 9] = float("nan")
    dn = DenoisingGenerator().generate(boxes, labels, ids, generator=_rng())
    assert torch.isfinite(dn.anchors).all() and torch.isfinite(dn.targets.boxes).all()
    hit = dn.targets.gt_index[0] == 1
    assert (dn.targets.box_weights[0][hit][:, 9] == 0).all() and (dn.targets.box_weights[0][hit][:, 8] == 1).all()


def _frame(gen, boxes, labels, ids, seed):
    dn = gen.generate(boxes, labels, ids, generator=_rng(seed))
    feats = torch.arange(dn.num_queries, dtype=torch.float32).view(1, -1, 1).expand(len(boxes), -1, 4).clone()
    return dn, feats


def test_cache_keeps_three_random_groups_reproducibly():
    boxes, labels, ids = _gt(5)
    gen = DenoisingGenerator()
    dn, feats = _frame(gen, boxes, labels, ids, 0)
    gen.cache(feats, dn.anchors, dn.targets, generator=_rng(3))
    first = gen.cached
    assert first.features.shape == (2, 3, 8, 4) and first.anchors.shape == (2, 3, 8, 11)
    groups = (first.features[0, :, 0, 0] / 8).long().tolist()  # feature = query index, 8 queries per group
    assert groups == sorted(groups) and len(set(groups)) == 3
    gen.cache(feats, dn.anchors, dn.targets, generator=_rng(3))
    assert torch.equal(gen.cached.features, first.features)
    gen.project_cache(lambda a: a + 1.0)
    assert torch.allclose(gen.cached.anchors, first.anchors + 1.0)


def test_temporal_update_rederives_targets_by_instance_id():
    boxes, labels, ids = _gt(6, counts=(3, 2))
    gen = DenoisingGenerator(Sparse4DLossConfig(num_temp_dn_groups=2))
    dn, feats = _frame(gen, boxes, labels, ids, 0)
    gen.cache(feats + 1000, dn.anchors, dn.targets, generator=_rng(1))
    cached = gen.cached
    # next frame: sample 0 lost its GT 1, the others moved and come in another order; sample 1 has a bank reset
    keep = [0, 2]
    moved = [boxes[0][keep].flip(0) + 0.3, boxes[1] + 0.3]
    new_labels, new_ids = [labels[0][keep].flip(0), labels[1]], [ids[0][keep].flip(0), ids[1]]
    dn2, feats2 = _frame(gen, moved, new_labels, new_ids, 1)
    f, a, t = gen.temporal_update(feats2, dn2.anchors, dn2.targets, moved, new_labels, new_ids,
                                  torch.tensor([True, False]))
    s = dn2.targets.group_size  # 4 now (2 GTs max), cached groups had 6: truncated
    assert f.shape == feats2.shape and a.shape == dn2.anchors.shape and t.labels.shape == dn2.targets.labels.shape
    lab, box, _, valid, inst, gidx = t.grouped()
    # sample 0, first 2 groups: the cached copies (features marked +1000)
    assert torch.equal(f[0, : 2 * s, 0], cached.features[0, :, :s, 0].flatten())
    assert torch.equal(a[0, : 2 * s], cached.anchors[0, :, :s].flatten(0, 1))
    seen = {"lost": 0, "found": 0, "negative": 0}
    for gi in range(2):
        for q in range(s):
            cid, clab = int(cached.instance_ids[0, gi, q]), int(cached.labels[0, gi, q])
            if cid == int(ids[0][1]):  # the object that left
                assert lab[0, gi, q] == LOST_LABEL and gidx[0, gi, q] == -1 and valid[0, gi, q]
                seen["lost"] += 1
            elif cid >= 0:  # found again: current label and *current* box
                j = new_ids[0].tolist().index(cid)
                assert gidx[0, gi, q] == j and lab[0, gi, q] == new_labels[0][j]
                assert torch.allclose(box[0, gi, q], moved[0][j])
                seen["found"] += 1
            else:
                assert clab == NEGATIVE_LABEL and lab[0, gi, q] == NEGATIVE_LABEL and inst[0, gi, q] == -1
                seen["negative"] += 1
    assert min(seen.values()) > 0, seen
    # later groups of sample 0 and all of sample 1 (invalid bank) are this frame's own DN queries
    current = dn2.targets.grouped()
    assert torch.equal(lab[0, 2:], current[0][0, 2:]) and torch.equal(lab[1], current[0][1])
    assert torch.equal(f[1], feats2[1])


def test_temporal_update_pads_a_smaller_cache_and_skips_without_cache():
    boxes, labels, ids = _gt(7, counts=(1,))
    gen = DenoisingGenerator()
    dn, feats = _frame(gen, boxes, labels, ids, 0)
    same = gen.temporal_update(feats, dn.anchors, dn.targets, boxes, labels, ids, torch.tensor([True]))
    assert same[2] is dn.targets  # nothing cached yet
    gen.cache(feats, dn.anchors, dn.targets, generator=_rng())
    big = _gt(8, counts=(3,))
    big_ids = [torch.cat([ids[0], big[2][0][1:] + 1000])]
    dn2, feats2 = _frame(gen, big[0], big[1], big_ids, 1)
    _, _, t = gen.temporal_update(feats2, dn2.anchors, dn2.targets, big[0], big[1], big_ids, torch.tensor([True]))
    lab, _, _, valid, _, _ = t.grouped()
    assert valid[0, :3, :2].all() and not valid[0, :3, 2:].any(), "cached groups of 2 copies padded to 6, invalid"
    assert (lab[0, :3, 2:] == LOST_LABEL).all()
    with pytest.raises(ValueError):
        Sparse4DLossConfig(num_temp_dn_groups=6)


def test_temporal_update_keeps_gradients_of_the_current_groups():
    boxes, labels, ids = _gt(9, counts=(2,))
    gen = DenoisingGenerator()
    dn, feats = _frame(gen, boxes, labels, ids, 0)
    gen.cache(feats, dn.anchors, dn.targets, generator=_rng())
    live = feats.clone().requires_grad_(True)
    f, _, _ = gen.temporal_update(live, dn.anchors, dn.targets, boxes, labels, ids, torch.tensor([True]))
    f.sum().backward()
    s = dn.targets.group_size
    assert (live.grad[0, 3 * s:] == 1).all(), "groups 3, 4 are this frame's queries: gradient flows"
    assert (live.grad[0, : 3 * s] == 0).all(), "groups 0-2 were replaced by the (detached) cache"
