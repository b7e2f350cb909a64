"""Presets: full_r101 = the TAO card's values; op order; module output shapes of full_r101 on the meta device."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from visionops.models.sparse4d.decoder import operation_order
from visionops.models.sparse4d.param_count import build_on_meta, count_parameters, parameter_table
from visionops.models.sparse4d.presets import DEFAULT, FULL_R101, PRESETS, R50, Sparse4DConfig, get_preset

# The card's "How to use this model" spec, op order copied verbatim.
CARD_OPERATION_ORDER = [
    "deformable", "ffn", "norm", "refine", "temp_gnn", "gnn", "norm",
    "deformable", "ffn", "norm", "refine", "temp_gnn", "gnn", "norm",
    "deformable", "ffn", "norm", "refine", "temp_gnn", "gnn", "norm",
    "deformable", "ffn", "norm", "refine", "temp_gnn", "gnn", "norm",
    "deformable", "ffn", "norm", "refine", "temp_gnn", "gnn", "norm",
    "deformable", "ffn", "norm", "refine",
]

CARD_VALUES = {
    "backbone": "resnet101",
    "input_size": (960, 540),
    "use_grid_mask": True,
    "embed_dims": 256,
    "fpn_out_channels": 256,
    "num_levels": 4,  # neck num_outs 4, start_level 0; deformable num_levels 4
    "num_depth_layers": 3,
    "depth_loss_weight": 0.2,
    "num_output": 300,
    "cls_threshold_to_reg": 0.05,
    "score_threshold": 0.05,
    "num_groups": 8,
    "num_decoder": 6,
    "num_single_frame_decoder": 1,
    "attn_dropout": 0.1,  # head drop_out, graph models' dropout
    "with_quality_estimation": True,
    "num_anchor": 900,
    "num_temp_instances": 600,
    "confidence_decay": 0.8,
    "feat_grad": False,
    "default_time_interval": 0.033333,
    "anchor_embed_dims": (128, 32, 32, 64),
    "anchor_encoder_loops": 4,
    "num_heads": 8,
    "ffn_channels": 1024,
    "ffn_dropout": 0.1,
    "num_learnable_pts": 6,
    "fix_scale": ((0, 0, 0), (0.45, 0, 0), (-0.45, 0, 0), (0, 0.45, 0), (0, -0.45, 0), (0, 0, 0.45), (0, 0, -0.45)),
    "dfa_attn_drop": 0.15,
    "use_camera_embed": True,
    "refine_yaw": True,
    "num_dn_groups": 5,
    "num_temp_dn_groups": 3,
    "max_dn_gt": 128,
    "dn_noise_scale": (2.0, 2.0, 2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5),
    "use_reid": False,  # use_reid_sampling: false
    "num_classes": 6,  # Person, GR1_T2, Digit, Nova_Carter, Transporter, Forklift
}


@pytest.mark.parametrize("key", sorted(CARD_VALUES))
def test_full_r101_matches_the_card(key):
    assert getattr(FULL_R101, key) == CARD_VALUES[key]


def test_r50_differs_only_in_backbone_and_default_is_small():
    changed = {f.name for f in dataclasses.fields(Sparse4DConfig) if getattr(R50, f.name) != getattr(FULL_R101, f.name)}
    assert changed == {"backbone"}
    assert DEFAULT.backbone == "resnet18" and DEFAULT.num_decoder == 3 and DEFAULT.num_single_frame_decoder == 1
    assert DEFAULT.num_anchor <= 256 and DEFAULT.embed_dims <= 128
    assert get_preset("full_r101") is PRESETS["full_r101"]
    with pytest.raises(ValueError, match="unknown Sparse4D preset"):
        get_preset("r152")
    with pytest.raises(ValueError, match="anchor_embed_dims"):
        FULL_R101.replace(embed_dims=128, fpn_out_channels=128)


def test_operation_order_is_the_cards_39_entries():
    assert operation_order(6, 1) == CARD_OPERATION_ORDER
    assert len(CARD_OPERATION_ORDER) == 4 + 5 * 7
    assert operation_order(3, 1) == CARD_OPERATION_ORDER[:4 + 2 * 7]


def test_full_r101_module_output_shapes_on_meta():
    model = build_on_meta(FULL_R101).train()
    assert model.decoder.operation_order == CARD_OPERATION_ORDER
    images = torch.empty(1, 6, 3, 540, 960, device="meta")
    with torch.no_grad():
        out = model(images, torch.empty(1, 6, 4, 4, device="meta"), torch.empty(1, 6, 2, device="meta"))
    assert [tuple(d.shape) for d in out["depth"]] == [(6, 1, 135, 240), (6, 1, 68, 120), (6, 1, 34, 60)]
    assert len(out["prediction"]) == 6
    assert all(tuple(x.shape) == (1, 900, 6) for x in out["classification"])
    assert all(tuple(x.shape) == (1, 900, 11) for x in out["prediction"])
    assert all(tuple(x.shape) == (1, 900, 2) for x in out["quality"])
    assert tuple(out["instance_feature"].shape) == (1, 900, 256)


def test_parameter_counts():
    full, slots = count_parameters(FULL_R101), count_parameters(FULL_R101.replace(use_camera_embed=False))
    assert full["backbone"] == 42_500_160  # torchvision ResNet-101 without fc
    assert full["total"] == 67_142_063
    assert count_parameters(R50)["total"] == 48_149_935
    # The card's 7.8e7 is matched by TAO's 20-slot weights_fc (Linear(256 -> 8 * 20 * 4 * 13)).
    assert slots["decoder.deformable.weights_fc"] == 6 * (256 * 8320 + 8320)
    assert 7.8e7 <= slots["total"] < 8.0e7
    assert "decoder.temp_gnn" in parameter_table(DEFAULT, "default")
