"""Deformable feature aggregation: naive reference, strict in-image mask, level-by-level == stacked,
camera-order invariance with the camera embedding, ONNX export without custom ops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from visionops.data.synthetic.cameras import ring_projections
from visionops.models.sparse4d.deformable_aggregation import (
    DeformableFeatureAggregation,
    aggregate,
    aggregate_per_camera,
    aggregate_stacked,
    project_points,
)


def ring_cameras(num_cams: int, width: int, height: int, radius: float = 8.0, focal: float = 60.0):
    """(1, Ncam, 4, 4) world->pixel matrices of cameras on a ring at 3 m, looking at the origin; (1, Ncam, 2) wh."""
    mats = torch.from_numpy(ring_projections(num_cams, width, height, focal, radius, 3.0)).float()
    return mats[None], torch.tensor([[float(width), float(height)]]).expand(1, num_cams, 2)


def naive_aggregate(feature_maps, uv, weights):
    """Loop reference of the CUDA op: skip u, v outside (0, 1); bilinear at u * W - 0.5 with zero padding."""
    b, k, c = feature_maps[0].shape[:3]
    n, p, g = uv.shape[2], uv.shape[3], weights.shape[-1]
    cg = c // g
    out = torch.zeros(b, n, c, dtype=torch.float64)
    for bi, ni, ki, li, pi, gi in np.ndindex(b, n, k, len(feature_maps), p, g):
        u, v = uv[bi, ki, ni, pi].tolist()
        if not (0 < u < 1 and 0 < v < 1):
            continue
        fm = feature_maps[li][bi, ki, gi * cg:(gi + 1) * cg].double()
        h, w = fm.shape[-2:]
        x, y = u * w - 0.5, v * h - 0.5
        x0, y0 = math.floor(x), math.floor(y)
        value = torch.zeros(cg, dtype=torch.float64)
        for xi, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            for yi, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                if 0 <= xi < w and 0 <= yi < h:
                    value += wx * wy * fm[:, yi, xi]
        out[bi, ni, gi * cg:(gi + 1) * cg] += float(weights[bi, ni, ki, li, pi, gi]) * value
    return out


def _random_inputs(seed=0, b=1, k=2, n=3, p=4, g=2, c=4, sizes=((5, 7), (3, 4))):
    gen = torch.Generator().manual_seed(seed)
    maps = [torch.randn(b, k, c, h, w, generator=gen) for h, w in sizes]
    uv = torch.rand(b, k, n, p, 2, generator=gen) * 1.2 - 0.1  # some points outside, some within 1/2 px
    weights = torch.rand(b, n, k, len(sizes), p, g, generator=gen)
    return maps, uv, weights


def test_levelwise_matches_naive_loop_reference():
    maps, uv, weights = _random_inputs()
    outside = ~((uv > 0) & (uv < 1)).all(-1)
    assert outside.any() and (~outside).any()  # the draw exercises both cases
    torch.testing.assert_close(aggregate(maps, uv, weights).double(), naive_aggregate(maps, uv, weights),
                               rtol=1e-5, atol=1e-5)


def test_strict_mask_zeroes_points_just_outside_the_image():
    maps, uv, weights = _random_inputs(seed=1)
    # Every sample a quarter pixel left of the image: grid_sample alone still returns part of column 0.
    uv = torch.stack([torch.full_like(uv[..., 0], -0.25 / 7), torch.full_like(uv[..., 1], 0.5)], dim=-1)
    raw = F.grid_sample(maps[0].flatten(0, 1), (uv * 2 - 1).flatten(0, 1), align_corners=False)
    assert raw.abs().max() > 0.01
    assert aggregate(maps, uv, weights).abs().max() == 0
    uv_nan = uv.clone()
    uv_nan[..., 0] = float("nan")  # e.g. a degenerate projection: no NaN may leak into the output
    assert torch.isfinite(aggregate(maps, uv_nan, weights)).all()


def test_levelwise_equals_stacked_and_per_camera_sums_to_it():
    maps, uv, weights = _random_inputs(seed=2, k=3, n=5, p=6, g=4, c=8, sizes=((6, 9), (3, 5), (2, 3)))
    levelwise = aggregate(maps, uv, weights)
    torch.testing.assert_close(levelwise, aggregate_stacked(maps, uv, weights))
    torch.testing.assert_close(aggregate_per_camera(maps, uv, weights).sum(dim=2), levelwise)


def _dfa_inputs(num_cams=3, n=6, c=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    proj, wh = ring_cameras(num_cams, 48, 32)
    anchor = torch.zeros(1, n, 11)
    anchor[..., :2] = torch.rand(1, n, 2, generator=gen) * 4 - 2
    anchor[..., 2] = 0.8
    anchor[..., 3:6] = math.log(1.0)
    anchor[..., 7] = 1.0
    feats = [torch.randn(1, num_cams, c, h, w, generator=gen) for h, w in ((8, 12), (4, 6))]
    return torch.randn(1, n, c, generator=gen), anchor, torch.randn(1, n, c, generator=gen), feats, proj, wh


def _dfa(use_camera_embed=True, c=16):
    torch.manual_seed(0)
    dfa = DeformableFeatureAggregation(c, num_groups=4, num_levels=2, use_camera_embed=use_camera_embed,
                                       max_num_cams=4).eval()
    torch.nn.init.normal_(dfa.weights_fc.weight, std=0.5)  # non-uniform weights, otherwise order is moot
    return dfa


def test_key_points_project_inside_the_ring_cameras():
    inst, anchor, embed, feats, proj, wh = _dfa_inputs()
    uv = project_points(_dfa().kps_generator(anchor, inst), proj, wh)
    assert ((uv > 0) & (uv < 1)).all(-1).float().mean() > 0.9


def test_camera_order_does_not_matter_with_camera_embedding():
    inst, anchor, embed, feats, proj, wh = _dfa_inputs()
    perm = torch.tensor([2, 0, 1])
    permuted = ([f[:, perm] for f in feats], proj[:, perm], wh[:, perm])
    dfa = _dfa()
    with torch.no_grad():
        out = dfa(inst, anchor, embed, feats, proj, wh)
        torch.testing.assert_close(dfa(inst, anchor, embed, *permuted), out, rtol=1e-5, atol=1e-5)
        assert out.shape == (1, 6, 32)  # residual cat: [aggregated, instance]
        torch.testing.assert_close(out[..., 16:], inst)
        slots = _dfa(use_camera_embed=False)  # TAO's slot weights: camera order matters
        assert not torch.allclose(slots(inst, anchor, embed, *permuted), slots(inst, anchor, embed, feats, proj, wh))


def test_attention_weights_softmax_over_cams_levels_points_and_dropout():
    inst, anchor, embed, feats, proj, wh = _dfa_inputs()
    dfa = _dfa()
    w = dfa.attention_weights(inst, embed, proj, wh)
    assert w.shape == (1, 6, 3, 2, 13, 4)
    torch.testing.assert_close(w.sum(dim=(2, 3, 4)), torch.ones(1, 6, 4))
    dfa.train()
    dropped = dfa.attention_weights(inst, embed, proj, wh)
    zero = dropped == 0
    assert zero.any()
    assert (zero.all(dim=(3, 5)) == zero.any(dim=(3, 5))).all()  # whole (camera, point) samples drop


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter is what the brief asks for
def test_dfa_exports_to_onnx_without_custom_ops(tmp_path):
    import onnx
    import onnxruntime as ort

    inst, anchor, embed, feats, proj, wh = _dfa_inputs(num_cams=2, n=5)
    dfa = _dfa()

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dfa = dfa

        def forward(self, inst, anchor, embed, proj, wh, f0, f1):
            return self.dfa(inst, anchor, embed, [f0, f1], proj, wh)

    args = (inst, anchor, embed, proj, wh, *feats)
    names = ["inst", "anchor", "embed", "proj", "wh", "f0", "f1"]
    path = tmp_path / "dfa.onnx"
    torch.onnx.export(Wrapper().eval(), args, str(path), input_names=names, output_names=["out"],
                      opset_version=17, dynamo=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "GridSample" in ops
    assert all(node.domain in ("", "ai.onnx") for node in onnx.load(str(path)).graph.node)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: a.numpy() for name, a in zip(names, args, strict=True)})[0]
    with torch.no_grad():
        want = dfa(inst, anchor, embed, feats, proj, wh).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
