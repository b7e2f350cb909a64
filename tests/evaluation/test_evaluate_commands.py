"""``visionops evaluate`` commands through click's CliRunner, and the report outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from visionops.evaluation.aicity_format import load_tracks, write_tracks
from visionops.evaluation.commands import evaluate
from visionops.evaluation.hota import evaluate_hota
from visionops.evaluation.report import flat_metrics, log_to_mlflow


def _obj(kind: str, oid: int, x: float, y: float, yaw: float, spaced: bool = True) -> dict:
    size = {"Person": [0.5, 0.6, 1.8], "Forklift": [1.2, 2.5, 2.2]}[kind]
    obj = {
        "object type": kind,
        "object id": oid,
        "3d location": [x, y, size[2] / 2],
        "3d bounding box scale": size,
        "3d bounding box rotation": [0.0, 0.0, yaw],
        "2d bounding box visible": {"Camera_0000": [10, 20, 30, 60]},
    }
    if not spaced:
        obj = {k.replace(" ", "_"): v for k, v in obj.items()}
    return obj


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """A tiny raw scene: two people walking and a forklift, 6 frames, frame 3 missing (nobody visible)."""
    folder = tmp_path / "raw" / "Warehouse_017"
    folder.mkdir(parents=True)
    gt = {}
    for f in (0, 1, 2, 4, 5):
        objects = [_obj("Person", 1, 1.0 + 0.1 * f, 2.0, 0.3), _obj("Person", 2, 6.0, 1.0 - 0.1 * f, 1.6)]
        if f < 3:
            objects.append(_obj("Forklift", 1, 12.0, 5.0, 0.0, spaced=False))
        gt[str(f)] = objects
    (folder / "ground_truth.json").write_text(json.dumps(gt))
    return folder


def invoke(*args: str):
    return CliRunner().invoke(evaluate, [str(a) for a in args], catch_exceptions=False)


def test_gt_from_scene_writes_the_track_file(scene, tmp_path):
    out = tmp_path / "gt.txt"
    result = invoke("gt-from-scene", scene, "--out", out)
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 13
    assert lines[0] == "17 0 1 0 1.0 2.0 0.9 0.5 0.6 1.8 0.3"
    assert lines[2] == "17 1 1 0 12.0 5.0 1.1 1.2 2.5 2.2 0.0"
    rows, notes = load_tracks(out)  # strict reader accepts what we write
    assert rows.shape == (13, 11) and notes == []


def test_gt_from_scene_to_stdout_and_scene_id_option(scene, tmp_path):
    result = invoke("gt-from-scene", scene)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("17 0 1 0 ")

    renamed = tmp_path / "my_scene"
    scene.rename(renamed)
    result = CliRunner().invoke(evaluate, ["gt-from-scene", str(renamed)])
    assert result.exit_code == 1
    assert "pass --scene-id" in result.output
    result = invoke("gt-from-scene", renamed, "--scene-id", "22")
    assert result.exit_code == 0
    assert result.stdout.startswith("22 0 1 0 ")


def test_hota_on_files_made_from_ground_truth_json(scene, tmp_path):
    gt_path, pred_path, json_path, png_path = (tmp_path / n for n in ("gt.txt", "pred.txt", "m/hota.json", "p.png"))
    assert invoke("gt-from-scene", scene, "--out", gt_path).exit_code == 0
    gt, _ = load_tracks(gt_path)
    pred = gt.copy()
    # Person 2 gets a new id from frame 4 on; the forklift is not predicted (class skipped).
    pred[(pred[:, 1] == 0) & (pred[:, 2] == 2) & (pred[:, 3] >= 4), 2] = 9
    pred = pred[pred[:, 1] == 0]
    write_tracks(pred_path, pred)

    result = invoke("hota", "--gt", gt_path, "--pred", pred_path, "--json", json_path, "--plot", png_path)
    assert result.exit_code == 0, result.output
    assert "│ Person" in result.stdout and "│ Average" in result.stdout and "│ Forklift" not in result.stdout
    assert "skipped class Forklift (no predictions)" in result.stdout

    data = json.loads(json_path.read_text())
    expected = evaluate_hota(gt, pred)
    assert data["overall"]["HOTA"] == pytest.approx(expected.overall["HOTA"])
    # Person 1 is perfect; person 2's 5 frames split 3 + 2 over two ids: A = 3/5 and 2/5 for its TPs.
    ass_a = (5 * 1 + 3 * 3 / 5 + 2 * 2 / 5) / 10
    assert data["overall"]["AssA"] == pytest.approx(100 * ass_a)
    assert data["overall"]["DetA"] == pytest.approx(100.0)
    assert data["gt"] == str(gt_path) and data["pred"] == str(pred_path)
    assert list(tmp_path.joinpath("m").iterdir()) == [json_path]  # no temporary left behind
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hota_location_protocol(scene, tmp_path):
    gt_path = tmp_path / "gt.txt"
    invoke("gt-from-scene", scene, "--out", gt_path)
    result = invoke("hota", "--gt", gt_path, "--pred", gt_path, "--protocol", "location", "--json", tmp_path / "j")
    assert result.exit_code == 0
    data = json.loads((tmp_path / "j").read_text())
    assert data["protocol"] == "location"
    assert data["overall"]["HOTA"] == pytest.approx(100.0)


def test_hota_strict_error_names_file_line_field_and_permissive_fixes(scene, tmp_path):
    gt_path, pred_path = tmp_path / "gt.txt", tmp_path / "pred.txt"
    invoke("gt-from-scene", scene, "--out", gt_path)
    lines = gt_path.read_text().splitlines()
    lines[3] = lines[3].replace(" ", "  ", 1)
    pred_path.write_text("\n".join(lines) + "\n\n")

    result = CliRunner().invoke(evaluate, ["hota", "--gt", str(gt_path), "--pred", str(pred_path)])
    assert result.exit_code == 1
    assert f"{pred_path}, line 4" in result.output
    assert "two spaces in a row" in result.output and "--permissive" in result.output

    result = invoke("hota", "--gt", gt_path, "--pred", pred_path, "--permissive")
    assert result.exit_code == 0, result.output
    assert f"fixed: {pred_path}: normalised whitespace" in result.output
    assert "on 1 line(s) (4)" in result.output and "skipped a blank line on 1 line(s) (14)" in result.output

    lines[3] = lines[3].replace("17  0", "17 7", 1)
    pred_path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(evaluate, ["hota", "--gt", str(gt_path), "--pred", str(pred_path), "--permissive"])
    assert result.exit_code == 1
    assert "line 4, field 'class_id'" in result.output


def test_hota_empty_prediction_file_scores_zero(scene, tmp_path):
    gt_path, pred_path = tmp_path / "gt.txt", tmp_path / "pred.txt"
    invoke("gt-from-scene", scene, "--out", gt_path)
    pred_path.write_text("")
    result = invoke("hota", "--gt", gt_path, "--pred", pred_path, "--json", tmp_path / "j.json")
    assert result.exit_code == 0
    assert json.loads((tmp_path / "j.json").read_text())["overall"]["HOTA"] == 0.0


def test_importing_the_commands_loads_no_heavy_library():
    code = (
        "import sys, visionops.evaluation.commands\n"
        "heavy = [m for m in ('trackeval', 'matplotlib', 'mlflow', 'rich', 'scipy') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_flat_metric_keys():
    gt = np.array([[17, 0, 1, 0, 0, 0, 0.5, 1, 1, 1, 0], [22, 1, 1, 0, 0, 0, 0.5, 1, 1, 1, 0]], dtype=float)
    keys = flat_metrics(evaluate_hota(gt, gt))
    assert keys["hota"] == pytest.approx(100.0)
    assert {"deta", "assa", "loca", "mota", "idf1", "person/hota", "forklift/assa", "scene_22/hota"} <= set(keys)


def test_log_to_mlflow_only_with_an_active_run(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    gt = np.array([[17, 0, 1, 0, 0, 0, 0.5, 1, 1, 1, 0]], dtype=float)
    result = evaluate_hota(gt, gt)
    assert mlflow.active_run() is None
    assert log_to_mlflow(result) is False

    monkeypatch.chdir(tmp_path)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment("eval-test", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            assert log_to_mlflow(result) is True
        logged = mlflow.get_run(run.info.run_id)
        assert logged.data.metrics["hota"] == pytest.approx(100.0)
        assert logged.data.metrics["person/hota"] == pytest.approx(100.0)
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")}
        assert artifacts == {"evaluation/hota.json", "evaluation/hota_per_class.png"}
    finally:
        mlflow.set_tracking_uri(previous_uri)
