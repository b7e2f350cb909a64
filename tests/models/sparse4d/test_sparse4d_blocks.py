"""Small Sparse4D blocks: anchor encoder, key points, camera embedding, attention, FFN, refinement, depth, re-ID."""

from __future__ import annotations

import math

import pytest
import torch

from visionops.models.sparse4d.anchor_encoder import SparseBox3DEncoder
from visionops.models.sparse4d.attention import ResidualMHA, decoupled_attention
from visionops.models.sparse4d.box_state import COS_YAW, SIN_YAW, VX
from visionops.models.sparse4d.camera_embedding import CameraEmbedding, normalise_projection
from visionops.models.sparse4d.depth_head import DenseDepthNet
from visionops.models.sparse4d.ffn import AsymmetricFFN
from visionops.models.sparse4d.keypoints import SparseBox3DKeyPointsGenerator
from visionops.models.sparse4d.refinement import SparseBox3DRefinementModule
from visionops.models.sparse4d.reid import ReIDBranch


def _anchor(x, y, z, w, length, h, yaw, v=(0.0, 0.0, 0.0)):
    return torch.tensor([x, y, z, math.log(w), math.log(length), math.log(h), math.sin(yaw), math.cos(yaw), *v])


def test_anchor_encoder_output_dims_and_parts():
    enc = SparseBox3DEncoder((128, 32, 32, 64), vel_dims=3, loops=4)
    assert len(enc.pos_fc) == 12  # 4 x [Linear, ReLU, LayerNorm]
    anchors = torch.randn(2, 5, 11)
    out = enc(anchors)
    assert out.shape == (2, 5, 256)
    moved = anchors.clone()
    moved[..., VX] += 1.0  # only the velocity changes -> only the last 64 channels change
    diff = (enc(moved) - out).abs().amax(dim=(0, 1))
    assert diff[:192].max() == 0 and diff[192:].max() > 0


def test_fixed_key_points_at_045_of_size_rotated_by_yaw():
    gen = SparseBox3DKeyPointsGenerator(embed_dims=8, num_learnable_pts=0)
    yaw = 0.7
    anchor = _anchor(1.0, -2.0, 0.5, 4.0, 2.0, 1.0, yaw)[None, None]
    pts = gen(anchor)[0, 0]
    assert pts.shape == (7, 3)
    c, s = math.cos(yaw), math.sin(yaw)
    centre = torch.tensor([1.0, -2.0, 0.5])
    heading, side = torch.tensor([c, s, 0.0]), torch.tensor([-s, c, 0.0])
    up = torch.tensor([0.0, 0.0, 1.0])
    expected = torch.stack([centre, centre + 0.45 * 4 * heading, centre - 0.45 * 4 * heading,
                            centre + 0.45 * 2 * side, centre - 0.45 * 2 * side, centre + 0.45 * up,
                            centre - 0.45 * up])
    torch.testing.assert_close(pts, expected)


def test_learnable_key_points_stay_inside_the_box():
    torch.manual_seed(0)
    gen = SparseBox3DKeyPointsGenerator(embed_dims=8, num_learnable_pts=6)
    torch.nn.init.normal_(gen.learnable_fc.weight, std=10.0)  # saturate the sigmoid
    anchor = _anchor(0.0, 0.0, 0.0, 2.0, 1.0, 3.0, 0.0)[None, None].expand(1, 4, 11)
    pts = gen(anchor, torch.randn(1, 4, 8))
    assert pts.shape == (1, 4, 13, 3)
    learned = pts[:, :, 7:].abs()
    assert (learned <= torch.tensor([1.0, 0.5, 1.5])).all()


def test_camera_embedding_ignores_homogeneous_scale_and_sees_geometry():
    torch.manual_seed(0)
    emb = CameraEmbedding(16)
    proj = torch.eye(4).expand(1, 2, 4, 4).clone()
    proj[:, :, :3, :3] = torch.tensor([[500.0, 0, 320], [0, 500, 180], [0, 0, 1]])
    proj[:, 1, :3, 3] = torch.tensor([100.0, -50.0, 2.0])
    wh = torch.tensor([[[640.0, 360.0], [640.0, 360.0]]])
    normed = normalise_projection(proj, wh)
    assert normed.abs().max() < 10  # raw entries are in the hundreds
    torch.testing.assert_close(emb(proj * 3.0, wh), emb(proj, wh))
    out = emb(proj, wh)
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_decoupled_attention_residual_goes_through_fc_after():
    torch.manual_seed(0)
    layer = ResidualMHA(8, 2, dropout=0.0).eval()
    fc_before, fc_after = torch.nn.Linear(4, 8, bias=False), torch.nn.Linear(8, 4, bias=False)
    q, pos = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    for p in layer.attn.out_proj.parameters():
        torch.nn.init.zeros_(p)  # attention contributes nothing -> output = fc_after([q, pos])
    out = decoupled_attention(layer, fc_before, fc_after, q, pos, value=q)
    torch.testing.assert_close(out, fc_after(torch.cat([q, pos], dim=-1)))


def test_attention_mask_blocks_keys():
    torch.manual_seed(0)
    layer = ResidualMHA(8, 2, dropout=0.0).eval()
    q = torch.randn(1, 4, 8)
    mask = torch.tensor([[False, False, True, True]] * 4)
    changed = q.clone()
    changed[:, 2:] += 5.0
    a = layer(q, attn_mask=mask)[:, :2]
    b = layer(torch.cat([q[:, :2], changed[:, 2:]], dim=1), attn_mask=mask)[:, :2]
    torch.testing.assert_close(a, b)


def test_asymmetric_ffn_identity_uses_pre_normed_input():
    torch.manual_seed(0)
    ffn = AsymmetricFFN(8, 4, 16, ffn_drop=0.0).eval()
    torch.nn.init.zeros_(ffn.layers[3].weight)
    torch.nn.init.zeros_(ffn.layers[3].bias)
    x = torch.randn(2, 3, 8) * 5 + 2
    torch.testing.assert_close(ffn(x), ffn.identity_fc(ffn.pre_norm(x)))
    assert ffn(x).shape == (2, 3, 4)


@pytest.mark.parametrize("add_anchor_velocity", [False, True])
def test_refinement_velocity_is_displacement_over_dt(add_anchor_velocity):
    torch.manual_seed(0)
    ref = SparseBox3DRefinementModule(16, num_classes=3, add_anchor_velocity=add_anchor_velocity).eval()
    feat, embed, anchor = torch.randn(2, 5, 16), torch.randn(2, 5, 16), torch.randn(2, 5, 11)
    dt = torch.tensor([0.5, 0.1])
    pred, cls, quality = ref(feat, anchor, embed, dt)
    raw = ref.layers(feat + embed) * ref.scale
    torch.testing.assert_close(pred[..., :8], raw[..., :8] + anchor[..., :8])
    expected_v = raw[..., 8:] / dt[:, None, None] + (anchor[..., 8:] if add_anchor_velocity else 0)
    torch.testing.assert_close(pred[..., 8:], expected_v)
    assert cls.shape == (2, 5, 3) and quality.shape == (2, 5, 2)
    torch.testing.assert_close(ref.cls_layers[-1].bias, torch.full((3,), -math.log(99.0)))
    assert ref(feat, anchor, embed, 0.1, return_cls=False)[1:] == (None, None)


def test_refinement_gradients_flow_to_anchor_and_yaw_is_residual():
    ref = SparseBox3DRefinementModule(8, num_classes=2)
    anchor = torch.randn(1, 3, 11, requires_grad=True)
    pred, _, _ = ref(torch.randn(1, 3, 8), anchor, torch.randn(1, 3, 8), 1 / 30)
    pred[..., SIN_YAW:COS_YAW + 1].sum().backward()
    assert torch.all(anchor.grad[..., SIN_YAW:COS_YAW + 1] == 1)


def test_depth_head_scales_with_focal():
    head = DenseDepthNet(4, num_depth_layers=2, equal_focal=100.0)
    maps = [torch.randn(1, 2, 4, 6, 8), torch.randn(1, 2, 4, 3, 4), torch.randn(1, 2, 4, 2, 2)]
    base = head(maps)
    assert [tuple(d.shape) for d in base] == [(2, 1, 6, 8), (2, 1, 3, 4)]
    scaled = head(maps, focal=torch.tensor([[200.0, 50.0]]))
    torch.testing.assert_close(scaled[0][0], 2 * base[0][0])
    torch.testing.assert_close(scaled[0][1], 0.5 * base[0][1])


def test_reid_branch_shapes_and_frozen_bnneck_bias():
    branch = ReIDBranch(8, hidden_channels=4, num_ids=5)
    out = branch(torch.randn(2, 3, 4, 8))
    assert out["visibility"].shape == (2, 3, 4) and ((out["visibility"] > 0) & (out["visibility"] < 1)).all()
    assert out["reid_feature"].shape == (2, 3, 8) and out["id_logits"].shape == (2, 3, 5)
    assert not branch.bnneck.bn.bias.requires_grad
