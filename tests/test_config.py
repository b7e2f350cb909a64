from pathlib import Path

import pytest
import yaml

from visionops.config import (
    ConfigError,
    Params,
    apply_overrides,
    digest,
    flatten,
    load_params,
    parse_override,
    validate_params,
)

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_yaml_is_valid_and_matches_the_defaults():
    # params.yaml documents every default: a drift between the file and the models is a bug
    assert load_params(REPO / "params.yaml") == Params()


def test_synthetic_scene_counts_keep_val_and_test_names_with_aicity_ids():
    # a third val scene would be named after the 9 extra train scenes (Warehouse_021-029): no AI City id
    with pytest.raises(ConfigError, match=r"val scenes up to Warehouse_030.*at most 2 val and 4 test"):
        validate_params({"data": {"synthetic": {"scenes": {"train": 24, "val": 3}}}})
    with pytest.raises(ConfigError, match=r"test scenes up to Warehouse_021"):
        validate_params({"data": {"synthetic": {"scenes": {"test": 5}}}})
    validate_params({"data": {"synthetic": {"scenes": {"train": 15, "val": 2, "test": 4}}}})
    validate_params({"data": {"synthetic": {"scenes": {"train": 60, "val": 2, "test": 4}}}})  # extra train: 021+


def test_unknown_key_names_dotted_path_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        validate_params({"data": {"synthetic": {"framez": 10}}}, "my.yaml")
    text = str(err.value)
    assert "my.yaml" in text and "data.synthetic.framez: unknown key" in text
    assert "Allowed keys here: seed, scenes, cameras, frames" in text


def test_unknown_section_lists_sections():
    allowed = "data, convert, sparse4d, detectnet_v2, prune, tracking"
    with pytest.raises(ConfigError, match=rf"dataa: unknown key\. Allowed keys here: {allowed}"):
        validate_params({"dataa": {}})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"data": {"synthetic": {"frames": "many"}}}, "data.synthetic.frames"),
        ({"data": {"synthetic": {"width": 961}}}, "must be even"),
        ({"data": {"synthetic": {"classes": ["Person", "Cat"]}}}, "unknown classes ['Cat']"),
        ({"data": {"source": "s3"}}, "data.source"),
        ({"data": {"synthetic": {"objects_per_scene": [5, 2]}}}, "0 <= min <= max"),
        ({"data": {"synthetic": {"scenes": {"training": 1}}}}, "data.synthetic.scenes.training"),
    ],
)
def test_mistyped_values_fail_with_their_path(data, fragment):
    with pytest.raises(ConfigError) as err:
        validate_params(data)
    assert fragment in str(err.value)


def test_overrides_like_dvc_exp_run_S(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": {"synthetic": {"frames": 10}}}))
    params = load_params(path, ["data.synthetic.frames=20", "data.synthetic.scenes={train: 1}",
                                "data.synthetic.depth=false", "data.source=local", "data.local.path=/x"])
    assert params.data.synthetic.frames == 20
    assert params.data.synthetic.scenes == {"train": 1}
    assert params.data.synthetic.depth is False
    assert params.data.local.path == "/x"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("data.synthetic.framez=3", "unknown key data.synthetic.framez. Allowed keys here: seed"),
        ("data.synth.frames=3", "unknown key data.synth. Allowed keys here: source, raw_dir"),
        ("data.synthetic.frames", "not of the form key.path=value"),
        ("data..frames=3", "empty key segment"),
        ("data.synthetic.frames.x=3", "is not a section"),
    ],
)
def test_bad_overrides(override, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        apply_overrides({"data": {"synthetic": {"frames": 3}}}, [override])
    assert fragment in str(err.value)


def test_parse_override_yaml_values():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=") == (["a"], "")
    assert parse_override("a=x=y") == (["a"], "x=y")


def test_digest_is_order_independent_and_sensitive():
    a = {"x": 1, "y": {"z": 2}}
    assert digest(a) == digest({"y": {"z": 2}, "x": 1})
    assert digest(a) != digest({"x": 2, "y": {"z": 2}})
    assert len(digest(Params())) == 12


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2], "d": {}}


def test_missing_or_broken_params_file(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("convert.fps=-1", "convert.fps"),
        ("convert.bev_groups.mode=grid", "convert.bev_groups.mode"),
        ("convert.bev_groups.group_size=[6, 2]", "group_size must be (min, max)"),
        ("convert.kitti.class_names={Cat: cat}", "unknown GT classes ['Cat']"),
        ("convert.resize=[8, 8]", "resize must be [width, height]"),
        ("convert.jpeg_quality=0", "convert.jpeg_quality"),
    ],
)
def test_convert_section_is_validated(tmp_path, override, fragment):
    path = tmp_path / "params.yaml"
    path.write_text("{}\n")
    with pytest.raises(ConfigError) as info:
        load_params(path, [override])
    assert fragment in str(info.value)
