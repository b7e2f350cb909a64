"""``sparse4d`` params: defaults, preset + overrides -> Sparse4DConfig, and clear errors for bad model keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from visionops.config import ConfigError, Params, apply_overrides, load_params, validate_params
from visionops.models.sparse4d.presets import DEFAULT, FULL_R101

REPO = Path(__file__).resolve().parents[2]


def _s4d(section: dict):
    return validate_params({"sparse4d": section}).sparse4d


def test_params_yaml_section_equals_the_defaults_and_builds_the_default_preset():
    params = load_params(REPO / "params.yaml")
    assert params.sparse4d == Params().sparse4d
    cfg = params.sparse4d.architecture()
    assert cfg == DEFAULT.replace(num_classes=6, class_names=tuple(params.sparse4d.classes))
    assert params.sparse4d.num_anchor == cfg.num_anchor == 256
    raw = yaml.safe_load((REPO / "params.yaml").read_text())["sparse4d"]
    assert set(raw) == set(type(params.sparse4d).model_fields)  # every key documented in the file


def test_full_preset_with_the_card_anchor_count_is_the_card_config():
    cfg = _s4d({"preset": "full_r101", "num_anchor": 900}).architecture()
    assert cfg == FULL_R101


def test_anchor_count_keeps_the_temporal_share_unless_given():
    assert _s4d({"num_anchor": 8}).architecture().num_temp_instances == 4  # e2e micro config
    assert _s4d({"preset": "r50", "num_anchor": 300}).architecture().num_temp_instances == 200
    assert _s4d({"num_anchor": 64, "model": {"num_temp_instances": 10}}).architecture().num_temp_instances == 10


def test_model_overrides_become_config_fields():
    section = _s4d({"input_size": [256, 128], "classes": ["Person", "Forklift"],
                    "model": {"num_decoder": 4, "use_grid_mask": False, "dn_noise_scale": [1.0] * 11,
                              "depth_loss_weight": 1},
                    "infer": {"score_threshold": 0.1, "num_output": 50}})
    cfg = section.architecture()
    assert (cfg.num_decoder, cfg.use_grid_mask, cfg.input_size) == (4, False, (256, 128))
    assert cfg.dn_noise_scale == (1.0,) * 11 and cfg.depth_loss_weight == 1
    assert (cfg.num_classes, cfg.class_names) == (2, ("Person", "Forklift"))
    assert (cfg.score_threshold, cfg.num_output) == (0.1, 50)


@pytest.mark.parametrize(("model", "fragment"), [
    ({"num_decoders": 4}, "unknown Sparse4DConfig field 'num_decoders'; allowed: "),
    ({"num_anchor": 10}, "'num_anchor': set it with sparse4d.num_anchor"),
    ({"class_names": ["Person"]}, "set it with sparse4d.classes"),
    ({"num_decoder": "four"}, "sparse4d.model.num_decoder must be a int like 6, got 'four'"),
    ({"use_grid_mask": 1}, "must be a bool"),
    ({"num_groups": 3}, "embed_dims must be divisible by num_groups"),
])
def test_bad_model_overrides_fail_with_the_key(model, fragment):
    with pytest.raises(ConfigError) as err:
        _s4d({"model": model})
    assert "sparse4d" in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize(("section", "fragment"), [
    ({"preset": "r18"}, "sparse4d.preset"),
    ({"train": {"lrr": 1}}, "sparse4d.train.lrr: unknown key"),
    ({"augment": {"resize_lim": [1.2, 1.0]}}, "resize_lim must be [min, max]"),
    ({"augment": {"bot_pct_lim": [0.0, 1.0]}}, "bot_pct_lim must stay below 1"),
    ({"train": {"skip_probability": 1.0}}, "sparse4d.train.skip_probability"),
    ({"train": {"precision": "fp8"}}, "sparse4d.train.precision"),
    ({"input_size": [16, 16]}, "input_size must be"),
])
def test_bad_sections_fail_with_their_path(section, fragment):
    with pytest.raises(ConfigError) as err:
        _s4d(section)
    assert fragment in str(err.value)


def test_augment_keys_are_the_dataset_augmentation_fields():
    from visionops.data.sparse4d_augment import Sparse4DAugment

    augment = Params().sparse4d.augment
    assert Sparse4DAugment(**augment.model_dump()) == Sparse4DAugment()  # same names and defaults


def test_dvc_style_overrides_reach_the_model_dict():
    data = apply_overrides({}, ["sparse4d.model={num_decoder: 2}", "sparse4d.train.backbone_lr_mult=0.5"])
    section = validate_params(data).sparse4d
    assert section.architecture().num_decoder == 2 and section.train.backbone_lr_mult == 0.5
