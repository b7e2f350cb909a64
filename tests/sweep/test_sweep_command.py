"""``visionops sweep`` from the command line: help, errors, and a one-trial run with the results printed."""

from __future__ import annotations

import yaml
from click.testing import CliRunner
from sweep_helpers import detectnet_params

from visionops.cli import main


def test_help_names_the_options_and_the_params_section():
    result = CliRunner().invoke(main, ["sweep", "--help"])
    assert result.exit_code == 0
    for text in ("--trials", "--storage", "--workers", "--study", "sweep.MODEL", "postgresql+psycopg2://",
                 "best_params.yaml"):
        assert text in result.output


def test_unknown_model_and_bad_storage_are_clean_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    result = CliRunner().invoke(main, ["sweep", "yolo"])
    assert result.exit_code == 2 and "'yolo' is not one of 'detectnet_v2', 'sparse4d'" in result.output
    result = CliRunner().invoke(main, ["sweep", "detectnet_v2", "--storage", "postgresql+psycopg2://u:pw@127.0.0.1:1/x"])
    assert result.exit_code == 1 and "Error: sweep storage postgresql+psycopg2://u:***@127.0.0.1:1/x" in result.output
    bad = ["-S", "sweep.detectnet_v2.space={detectnet_v2.train.max_lrr: {type: float, low: 0.1, high: 0.2}}"]
    result = CliRunner().invoke(main, [*bad, "sweep", "detectnet_v2"])
    assert result.exit_code == 1 and "unknown key detectnet_v2.train.max_lrr" in result.output


def test_one_trial_from_the_command_line(kitti_root, monkeypatch):
    params = detectnet_params({"budget": {"detectnet_v2.train.epochs": 1, "detectnet_v2.train.validate_every": 1}})
    (kitti_root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    monkeypatch.setenv("DVC_ROOT", str(kitti_root))
    monkeypatch.chdir(kitti_root)
    result = CliRunner().invoke(main, ["sweep", "detectnet_v2", "--trials", "1", "--study", "cli", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "study cli (sqlite:///" in result.output and "1 complete" in result.output
    assert "sweeps/cli/best_params.yaml" in result.output
    assert (kitti_root / "mlruns" / "optuna.db").is_file()
    assert yaml.safe_load((kitti_root / "sweeps" / "cli" / "best_params.yaml").read_text()).keys() == {
        "detectnet_v2.train.max_lr", "detectnet_v2.train.soft_start", "detectnet_v2.train.annealing"}


def test_missing_data_stops_the_sweep_with_the_folder_named(tmp_path, monkeypatch):
    params = detectnet_params({"budget": {"detectnet_v2.train.epochs": 1, "detectnet_v2.train.validate_every": 1}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sweep", "detectnet_v2", "--trials", "3", "--no-progress"])
    assert result.exit_code == 1 and "Error:" in result.output and "data/kitti" in result.output, result.output
    import optuna

    (trial,) = optuna.load_study(study_name="detectnet_v2", storage=f"sqlite:///{tmp_path}/mlruns/optuna.db").trials
    assert trial.state.name == "FAIL"  # one trial, not three: the error is not a property of the configuration
