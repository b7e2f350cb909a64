"""Search-space parsing and checking, trial params, the -S round trip and the seeded sampler (no training)."""

from __future__ import annotations

import optuna
import pytest
from sweep_helpers import detectnet_params

from visionops.config import ConfigError, Params, parse_override, validate_params
from visionops.sweep.space import (
    check_model,
    check_space,
    fingerprint,
    format_value,
    override_args,
    suggest,
    trial_params,
)
from visionops.sweep.study import build_pruner, build_sampler


def _with_space(space: dict, model: str = "detectnet_v2", **section) -> Params:
    return validate_params({"sweep": {model: {"space": space, **section}}}, "test.yaml")


@pytest.mark.parametrize("model", ["detectnet_v2", "sparse4d"])
def test_default_spaces_are_valid_params_keys(model):
    params = Params()
    check_space(params, model)
    cfg = getattr(params.sweep, model)
    assert cfg.space and all(key.startswith(f"{model}.") for key in cfg.space)
    assert cfg.metric == "val/loss" and cfg.direction == "minimize"  # mAP is 0 after a CPU-sized budget


@pytest.mark.parametrize(("entry", "fragment"), [
    ({"type": "float", "low": 0.1, "high": 0.1}, "low < high"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log: true needs low > 0"),
    ({"type": "categorical"}, "non-empty 'choices'"),
    ({"type": "categorical", "choices": [1, 2], "low": 0}, "takes only 'choices'"),
    ({"type": "int", "low": 1, "high": 4.5}, "whole numbers"),
    ({"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}, "cannot be combined"),
    ({"type": "normal", "low": 0, "high": 1}, "type"),
    ({"type": "float", "low": 0.1, "hi": 0.2}, "hi: unknown key"),
])
def test_bad_search_space_entry_names_the_entry(entry, fragment):
    with pytest.raises(ConfigError) as err:
        _with_space({"detectnet_v2.train.max_lr": entry})
    text = str(err.value)
    assert "test.yaml" in text and "sweep.detectnet_v2.space.detectnet_v2.train.max_lr" in text
    assert fragment in text


def test_unknown_sweep_key_fails_like_every_params_file():
    with pytest.raises(ConfigError, match=r"sweep\.detectnet_v2\.spaces: unknown key\. Allowed keys here: .*space"):
        validate_params({"sweep": {"detectnet_v2": {"spaces": {}}}})
    with pytest.raises(ConfigError, match=r"sweep\.detectnet_v2\.metric"):
        validate_params({"sweep": {"detectnet_v2": {"metric": "val/recall_2m"}}})  # Sparse4D's, not DetectNet's


def test_space_key_must_exist_in_the_params_schema():
    params = _with_space({"detectnet_v2.train.max_lrr": {"type": "float", "low": 1e-4, "high": 1e-3}})
    with pytest.raises(ConfigError) as err:
        check_space(params, "detectnet_v2")
    text = str(err.value)
    assert "sweep.detectnet_v2.space['detectnet_v2.train.max_lrr']" in text
    assert "unknown key detectnet_v2.train.max_lrr" in text and "Allowed keys here: epochs, batch_size" in text


def test_space_key_must_belong_to_the_swept_model():
    params = _with_space({"sparse4d.train.lr": {"type": "float", "low": 1e-4, "high": 1e-3}})
    with pytest.raises(ConfigError, match=r"must be in the detectnet_v2 section"):
        check_space(params, "detectnet_v2")


def test_space_range_must_be_valid_for_the_field():
    # soft_start is a fraction (0..1): the upper end of the range is checked against the field
    params = _with_space({"detectnet_v2.train.soft_start": {"type": "float", "low": 0.1, "high": 2.0}})
    with pytest.raises(ConfigError, match=r"(?s)space\['detectnet_v2.train.soft_start'\] = 2.0.*less than or equal"):
        check_space(params, "detectnet_v2")


def test_budget_and_space_may_not_share_a_key():
    with pytest.raises(ConfigError, match=r"both fixed in 'budget' and searched in 'space'"):
        _with_space({"detectnet_v2.train.epochs": {"type": "int", "low": 1, "high": 3}},
                    budget={"detectnet_v2.train.epochs": 2})


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown sweep model 'yolo'; choose one of detectnet_v2, sparse4d"):
        check_model("yolo")


@pytest.mark.parametrize("value", [1e-05, 0.1, 1.2345678901234567e-4, 3, True, "nms", [480, 272], None])
def test_values_round_trip_through_the_override_syntax(value):
    key, parsed = parse_override(f"a.b={format_value(value)}")
    assert key == ["a", "b"] and parsed == value and type(parsed) is type(value)


def test_trial_params_apply_budget_and_sampled_values():
    params = detectnet_params()
    out = trial_params(params, "detectnet_v2", {"detectnet_v2.train.max_lr": 1.5e-3,
                                                "detectnet_v2.coverage_foreground_weight": 0.25})
    assert out.detectnet_v2.train.max_lr == 1.5e-3 and out.detectnet_v2.coverage_foreground_weight == 0.25
    assert out.detectnet_v2.train.epochs == 2 and out.detectnet_v2.train.validate_every == 1  # the budget
    assert out.detectnet_v2.input_size == (128, 96) or list(out.detectnet_v2.input_size) == [128, 96]
    assert override_args({"x.y": 2e-4}) == ["x.y=0.0002"]


def test_seeded_sampler_repeats_its_draws_and_workers_differ():
    cfg = detectnet_params({"space": {
        "detectnet_v2.train.max_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "detectnet_v2.train.batch_size": {"type": "categorical", "choices": [2, 4, 8]},
        "detectnet_v2.train.epochs": {"type": "int", "low": 1, "high": 5},
    }, "budget": {}}).sweep.detectnet_v2

    def draws(worker: int) -> list[dict]:
        study = optuna.create_study(direction=cfg.direction, sampler=build_sampler(cfg, worker),
                                    pruner=build_pruner(cfg))
        return [suggest(study.ask(), cfg.space) for _ in range(3)]

    first = draws(0)
    assert first == draws(0)
    assert first != draws(1)
    assert all(isinstance(d["detectnet_v2.train.epochs"], int) and d["detectnet_v2.train.batch_size"] in (2, 4, 8)
               for d in first)


def test_pruner_choices():
    for name, kind in (("median", optuna.pruners.MedianPruner), ("hyperband", optuna.pruners.HyperbandPruner),
                       ("none", optuna.pruners.NopPruner)):
        assert isinstance(build_pruner(detectnet_params({"pruner": name}).sweep.detectnet_v2), kind)


def test_fingerprint_ignores_searched_keys_but_not_the_rest_of_the_model():
    base = detectnet_params()
    searched = validate_params({**base.model_dump(mode="json"),
                                "detectnet_v2": {**base.detectnet_v2.model_dump(mode="json"),
                                                 "train": {**base.detectnet_v2.train.model_dump(), "max_lr": 0.5}}})
    other = detectnet_params()
    other.detectnet_v2.arch = "resnet34"
    assert fingerprint(base, "detectnet_v2") == fingerprint(searched, "detectnet_v2")
    assert fingerprint(base, "detectnet_v2") != fingerprint(other, "detectnet_v2")
