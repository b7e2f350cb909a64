"""The assembled network on the small preset: training step, tracking over frames, the temporal-key quirk,
denoising-query isolation, post-processing."""

from __future__ import annotations

import math

import pytest
import torch

from visionops.data.synthetic.cameras import ring_projections
from visionops.models.sparse4d.attention import ResidualMHA
from visionops.models.sparse4d.decoder import DenoisingQueries, layer_outputs
from visionops.models.sparse4d.model import Sparse4D
from visionops.models.sparse4d.postprocess import SparseBox3DDecoder
from visionops.models.sparse4d.presets import DEFAULT

# Tiny but complete: same code paths as the CPU preset with fewer queries and a 96x64 input.
CFG = DEFAULT.replace(num_anchor=32, num_temp_instances=16, input_size=(96, 64))
W, H = CFG.input_size


def _cameras(num_cams: int = 2):
    return torch.from_numpy(ring_projections(num_cams, W, H, 60.0, 12.0, 3.0)).float()[None]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Sparse4D(CFG)


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 2, 3, H, W, generator=gen), _cameras()


def test_training_step_gives_finite_grads_everywhere(model):
    model.train()
    model.reset()
    images, proj = _inputs()
    out = model(images, proj, timestamp=torch.tensor([0.0]), scene_ids=["s"], focal=torch.full((1, 2), 60.0))
    assert [tuple(d.shape) for d in out["depth"]] == [(2, 1, 16, 24), (2, 1, 8, 12), (2, 1, 4, 6)]
    assert len(out["classification"]) == 3 and all(c is not None for c in out["classification"])
    loss = sum(o.float().square().mean() for key in ("classification", "prediction", "quality") for o in out[key])
    loss = loss + sum(d.log().mean() for d in out["depth"])
    model.zero_grad()
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert model.instance_bank.cached_feature is not None and "instance_ids" not in out


def test_tracking_over_frames_and_temporal_key_quirk(model):
    model.eval()
    model.reset(restart_ids=True)
    images, proj = _inputs(1)
    cls_bias = [layer.cls_layers[-1].bias for layer in model.decoder.layers if hasattr(layer, "cls_layers")]
    saved = [b.detach().clone() for b in cls_bias]
    keys = {}

    def grab(index):
        def hook(module, args, kwargs):
            keys[index] = (args[0], args[1])  # (query, key), both [feature, embedding]
        return hook

    handles = [layer.register_forward_pre_hook(grab(i), with_kwargs=True)
               for i, layer in enumerate(model.decoder.layers) if isinstance(layer, ResidualMHA)
               and model.decoder.operation_order[i] == "temp_gnn"]
    try:
        with torch.no_grad():
            for b in cls_bias:
                b.fill_(5.0)  # every query confident -> gets an id
            first = model(images, proj, timestamp=torch.tensor([0.0]), scene_ids=["s"])
            assert keys[4][1] is None  # cold start: temporal op falls back to self-attention
            assert first["classification"][1] is None  # middle layers skip cls in eval
            assert sorted(first["instance_ids"][0].tolist()) == list(range(32))
            cached = model.instance_bank.cached_ids.clone()
            second = model(images, proj, timestamp=torch.tensor([1 / 30]), scene_ids=["s"])
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for b, s in zip(cls_bias, saved, strict=True):
                b.copy_(s)
    c, t = CFG.embed_dims, CFG.num_temp_instances
    assert torch.equal(second["instance_ids"][0, :t], cached[0])  # carried ids
    assert second["instance_ids"][0, t:].min() >= 32  # the rest are fresh
    query4, key4 = keys[4]  # layer 1: keys = [cached features, embedding of the projected cached anchors]
    assert key4.shape[1] == t
    torch.testing.assert_close(key4[:, :, c:], query4[:, :t, c:])  # the update put the cached anchors first
    query, key = keys[11]  # layer 2: key position = *current* embeddings of instances 0..T-1 (refined in layer 1)
    torch.testing.assert_close(key[:, :, c:], query[:, :t, c:])
    assert not torch.allclose(key[:, :, c:], key4[:, :, c:], atol=1e-3)
    torch.testing.assert_close(key[:, :, :c], key4[:, :, :c])  # ... while the key features stay the cached ones
    dets = SparseBox3DDecoder(num_output=10, score_threshold=0.05).from_outputs(second)
    assert dets[0]["boxes_3d"].shape == (10, 10) and dets[0]["instance_feats"].shape == (10, c)
    assert set(dets[0]["instance_ids"].tolist()) <= set(second["instance_ids"][0].tolist())


def test_dn_queries_do_not_change_normal_queries(model):
    model.eval()
    images, proj = _inputs(2)
    gen = torch.Generator().manual_seed(0)
    dn = DenoisingQueries(anchor=torch.randn(1, 4, 11, generator=gen),
                          attn_mask=torch.tensor([[False, False, True, True]] * 2 + [[True, True, False, False]] * 2))
    with torch.no_grad():
        model.reset()
        plain = model(images, proj)
        model.reset()
        with_dn = model(images, proj, dn=dn)
    # Equal up to float reassociation (velocity = displacement / (1/30) amplifies it); an unmasked DN block
    # changes them by orders of magnitude more.
    for key in ("classification", "prediction"):
        for a, b in zip(plain[key], with_dn[key], strict=True):
            if a is not None:
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)
    assert [tuple(p.shape) for p in with_dn["dn_prediction"]] == [(1, 4, 11)] * 3
    merged = layer_outputs(with_dn)
    assert merged[0]["classification"].shape == (1, CFG.num_anchor + 4, CFG.num_classes)


def test_postprocess_thresholds_raw_probability_and_sorts_by_fused_score():
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    cls = torch.full((1, 4, 2), -10.0)
    cls[0, :, 1] = torch.tensor([logit(0.9), logit(0.04), logit(0.5), logit(0.3)])
    quality = torch.zeros(1, 4, 2)
    quality[0, :, 0] = torch.tensor([-5.0, 5.0, 5.0, 0.0])  # centerness: query 0 is badly centred
    pred = torch.zeros(1, 4, 11)
    pred[0, :, 0] = torch.arange(4.0)
    pred[0, :, 6:8] = torch.tensor([1.0, 0.0])  # yaw 90 deg
    ids = torch.tensor([[7, 8, 9, 10]])
    det = SparseBox3DDecoder(num_output=3, score_threshold=0.05).decode(cls, pred, quality, ids)[0]
    # top-3 by raw prob: 0 (0.9), 2 (0.5), 3 (0.3); query 1 (0.04) falls out; re-sorted by prob * centerness.
    assert det["instance_ids"].tolist() == [9, 10, 7]
    torch.testing.assert_close(det["cls_scores"], torch.tensor([0.5, 0.3, 0.9]))
    torch.testing.assert_close(det["scores_3d"], det["cls_scores"] * torch.sigmoid(torch.tensor([5.0, 0.0, -5.0])))
    torch.testing.assert_close(det["boxes_3d"][:, 0], torch.tensor([2.0, 3.0, 0.0]))
    torch.testing.assert_close(det["boxes_3d"][:, 6], torch.full((3,), math.pi / 2))
    assert det["labels_3d"].tolist() == [1, 1, 1]
    strict = SparseBox3DDecoder(num_output=4, score_threshold=0.4).decode(cls, pred, quality, ids)[0]
    assert strict["instance_ids"].tolist() == [9, 7]  # 0.5 * 0.99 > 0.9 * 0.007
