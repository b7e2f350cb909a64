from pathlib import Path

import pytest
from click.testing import CliRunner

from visionops.cli import main
from visionops.config import ConfigError, apply_overrides, load_params, read_params_file, validate_params
from visionops.config.presets import PRESETS, apply_preset, preset_overrides

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_and_its_overrides_parse_back(name):
    merged = apply_overrides(read_params_file(REPO / "params.yaml"), preset_overrides(name))
    params = validate_params(merged, f"params.yaml + {name}")
    flat = params.model_dump()
    for dotted, value in PRESETS[name].values.items():
        node = flat
        for part in dotted.split("."):
            node = node[part]
        assert node == (tuple(value) if isinstance(node, tuple) else value), dotted


def test_apply_keeps_comments_reports_changes_and_is_idempotent(params_file):
    before = params_file.read_text(encoding="utf-8")
    changes = apply_preset("dashcamnet", params_file)
    assert changes["detectnet_v2.input_size"] == ([480, 272], [960, 544])
    assert changes["detectnet_v2.classes"][1] == ["car", "bicycle", "person", "road_sign"]
    after = params_file.read_text(encoding="utf-8")
    # every comment of the original file is still there, and untouched keys keep their text
    comments = [line.split("#", 1)[1] for line in before.splitlines() if "#" in line]
    assert all(comment in after for comment in comments)
    assert "validate_decode: false" in after
    params = load_params(params_file)
    assert list(params.detectnet_v2.input_size) == [960, 544]
    assert params.detectnet_v2.train.epochs == 120
    assert params.prune.threshold == 0.1 and params.detectnet_v2.augment.zoom_max == 1.0  # TAO's values
    assert apply_preset("dashcamnet", params_file) == {}
    assert params_file.read_text(encoding="utf-8") == after


def test_unknown_preset_names_the_known_ones(params_file):
    with pytest.raises(ConfigError, match="unknown preset 'dashcam'.*dashcamnet"):
        apply_preset("dashcam", params_file)


def test_broken_params_file_is_left_untouched(params_file):
    params_file.write_text("detectnet_v2:\n  archh: resnet18\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="archh"):
        apply_preset("dashcamnet", params_file)
    assert params_file.read_text(encoding="utf-8") == "detectnet_v2:\n  archh: resnet18\n"


def test_cli_lists_prints_and_applies(params_file):
    runner = CliRunner()
    listing = runner.invoke(main, ["params", "preset", "--list"])
    assert listing.exit_code == 0 and "dashcamnet" in listing.output and "warehouse_gpu" in listing.output
    printed = runner.invoke(main, ["--params", str(params_file), "params", "preset", "dashcamnet",
                                   "--print-overrides"])
    assert printed.exit_code == 0
    assert "-S 'detectnet_v2.input_size=[960, 544]'" in printed.output
    applied = runner.invoke(main, ["--params", str(params_file), "params", "preset", "warehouse_gpu"])
    assert applied.exit_code == 0, applied.output
    assert "detectnet_v2.input_size: [480, 272] -> [960, 544]" in applied.output
    unknown = runner.invoke(main, ["--params", str(params_file), "params", "preset", "nope"])
    assert unknown.exit_code != 0 and "unknown preset 'nope'" in unknown.output
