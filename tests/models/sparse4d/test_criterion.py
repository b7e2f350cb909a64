"""Sparse4DCriterion: term bookkeeping, gradients, normalisation, thresholds, DN terms and NaN reporting."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from visionops.models.sparse4d.box_state import encode_gt
from visionops.models.sparse4d.criterion import NonFiniteLossError, Sparse4DCriterion
from visionops.models.sparse4d.denoising import DenoisingGenerator
from visionops.models.sparse4d.matcher import HungarianMatcher

C, N, LAYERS = 3, 12, 3


def _gt(counts=(3, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    boxes = [encode_gt(torch.rand(m, 7, generator=g) * 10 + 0.5, torch.randn(m, 3, generator=g)) for m in counts]
    labels = [torch.randint(0, C, (m,), generator=g) for m in counts]
    ids = [torch.arange(m) + 10 * b for b, m in enumerate(counts)]
    return boxes, labels, ids


def _outputs(bsz, n, seed=0, layers=LAYERS):
    g = torch.Generator().manual_seed(seed)
    return [{"classification": torch.randn(bsz, n, C, generator=g).requires_grad_(),
             "prediction": (torch.randn(bsz, n, 11, generator=g) * 3).requires_grad_(),
             "quality": torch.randn(bsz, n, 2, generator=g).requires_grad_()} for _ in range(layers)]


def test_terms_total_and_gradients_with_dn():
    boxes, labels, ids = _gt()
    dn = DenoisingGenerator().generate(boxes, labels, ids, generator=torch.Generator().manual_seed(0))
    outs = _outputs(2, N + dn.num_queries)
    res = Sparse4DCriterion(C)(outs, boxes, labels, dn_targets=dn.targets,
                               depth_preds=[torch.rand(4, 1, 3, 5, requires_grad=True) * 9],
                               gt_depths=[torch.rand(4, 3, 5) * 9])
    names = {f"layer{layer}_{t}" for layer in range(LAYERS) for t in ("cls", "box", "cns", "yns", "dn_cls", "dn_box")}
    assert set(res.losses) == names | {"depth", "total"}
    terms = [v for k, v in res.losses.items() if k != "total"]
    assert res.total.item() == pytest.approx(sum(t.item() for t in terms), rel=1e-6)
    res.total.backward()
    for out in outs:
        for key in ("classification", "prediction", "quality"):
            assert out[key].grad is not None and torch.isfinite(out[key].grad).all()
        assert out["classification"].grad[:, :N].abs().sum() > 0 and out["classification"].grad[:, N:].abs().sum() > 0
        assert out["prediction"].grad[:, N:].abs().sum() > 0, "DN box loss reaches the DN predictions"
    assert res.num_pos.tolist() == [5.0] * LAYERS


def test_last_layer_indices_are_the_matchers():
    boxes, labels, _ = _gt()
    outs = _outputs(2, N)
    res = Sparse4DCriterion(C)(outs, boxes, labels)
    direct = HungarianMatcher()(outs[-1]["classification"], outs[-1]["prediction"], labels, boxes)
    for (p, g), (p2, g2) in zip(res.indices, direct, strict=True):
        assert torch.equal(p, p2) and torch.equal(g, g2)


def test_perfect_matched_predictions_have_zero_box_loss_and_low_cls():
    boxes, labels, _ = _gt(counts=(2,))
    cls = torch.full((1, N, C), -9.0)
    pred = torch.randn(1, N, 11) * 50
    for j in range(2):
        cls[0, 3 + j, labels[0][j]] = 9.0
        pred[0, 3 + j] = boxes[0][j]
    res = Sparse4DCriterion(C)([{"classification": cls, "prediction": pred, "quality": None}], boxes, labels)
    assert res.losses["layer0_box"].item() == 0.0
    assert res.losses["layer0_cls"].item() < 1e-3
    assert sorted(res.indices[0][0].tolist()) == [3, 4]
    assert "layer0_cns" not in res.losses  # no quality output, no quality terms


def test_low_confidence_queries_get_no_box_loss():
    boxes, labels, _ = _gt()
    outs = _outputs(2, N, layers=1)
    with torch.no_grad():
        outs[0]["classification"].fill_(-10.0)  # max prob 4.5e-5 < 0.05
    res = Sparse4DCriterion(C)(outs, boxes, labels)
    assert res.losses["layer0_box"].item() == 0.0 and res.losses["layer0_cls"].item() > 0
    res.total.backward()
    assert outs[0]["prediction"].grad.abs().sum() == 0


def test_losses_are_normalised_by_num_pos():
    """Two copies of a batch: every sum and num_pos double, so every term stays the same."""
    boxes, labels, _ = _gt()
    outs = _outputs(2, N, layers=2)
    crit = Sparse4DCriterion(C)
    one = crit(outs, boxes, labels).losses
    doubled = [{k: torch.cat([v, v]) for k, v in out.items()} for out in outs]
    two = crit(doubled, boxes + boxes, labels + labels).losses
    for name in one:
        assert two[name].item() == pytest.approx(one[name].item(), rel=1e-5), name


def test_empty_gt_gives_background_only():
    boxes, labels, _ = _gt(counts=(0, 0))
    res = Sparse4DCriterion(C)(_outputs(2, N, layers=2), boxes, labels)
    assert res.losses["layer1_cls"].item() > 0 and res.losses["layer1_box"].item() == 0.0
    assert [len(p) for p, _ in res.indices] == [0, 0] and res.num_pos.tolist() == [1.0, 1.0]


def test_per_layer_dn_targets_and_reid_terms():
    boxes, labels, ids = _gt()
    dn = DenoisingGenerator().generate(boxes, labels, ids, generator=torch.Generator().manual_seed(1))
    outs = _outputs(2, N + dn.num_queries, layers=2)
    for out in outs:
        out["id_logits"] = torch.randn(2, N, 7, requires_grad=True)
        out["visibility"] = torch.rand(2, N, 4, requires_grad=True)
    crit = Sparse4DCriterion(C)
    res = crit(outs, boxes, labels, dn_targets=[dn.targets, dn.targets],
               gt_asset_ids=[torch.tensor([1, 5, 9]), torch.tensor([2, 3])],
               gt_visibility=[torch.rand(3, 4), torch.rand(2, 4)])
    assert {"layer0_id", "layer0_vis", "layer1_id", "layer1_vis"} <= set(res.losses)
    res.total.backward()
    assert outs[1]["id_logits"].grad.abs().sum() > 0 and outs[1]["visibility"].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="layers"):
        crit(outs, boxes, labels, dn_targets=[dn.targets])


@pytest.mark.parametrize(("key", "term"), [("prediction", "layer1_box"), ("classification", "layer1_cls")])
def test_nan_prediction_raises_naming_the_term(key, term):
    boxes, labels, _ = _gt()
    outs = _outputs(2, N)
    with torch.no_grad():
        outs[1][key][0, :, 0] = float("nan")
        if key == "prediction":
            outs[1]["classification"].fill_(3.0)  # confident, so the NaN box is regressed
    with pytest.raises(NonFiniteLossError, match=term) as info:
        Sparse4DCriterion(C)(outs, boxes, labels)
    assert info.value.term == term and info.value.layer == 1


def test_nan_depth_raises_naming_depth():
    boxes, labels, _ = _gt()
    pred = torch.full((4, 1, 2, 2), float("nan"))
    with pytest.raises(NonFiniteLossError, match="depth") as info:
        Sparse4DCriterion(C)(_outputs(2, N, layers=1), boxes, labels, depth_preds=[pred],
                             gt_depths=[torch.ones(4, 2, 2)])
    assert info.value.layer is None


def test_temporal_dn_targets_apply_from_the_first_temporal_layer():
    boxes, labels, ids = _gt()
    dn = DenoisingGenerator().generate(boxes, labels, ids, generator=torch.Generator().manual_seed(2))
    lost = dataclasses.replace(dn.targets, labels=torch.where(dn.targets.labels >= 0, -1, dn.targets.labels))
    outs = _outputs(2, N + dn.num_queries)
    res = Sparse4DCriterion(C)(outs, boxes, labels, dn_targets=dn.targets, temporal_dn_targets=lost)
    assert res.losses["layer0_dn_box"].item() > 0, "layer 0 (single-frame) keeps this frame's DN targets"
    assert res.losses["layer1_dn_box"].item() == 0.0 and res.losses["layer2_dn_box"].item() == 0.0
    with pytest.raises(ValueError, match="single DNTargets"):
        Sparse4DCriterion(C)(outs, boxes, labels, dn_targets=[dn.targets] * LAYERS, temporal_dn_targets=lost)
