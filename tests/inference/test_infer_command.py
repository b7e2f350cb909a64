"""`visionops infer sparse4d` with a tiny model (the checkpoint loader is replaced by a stub module)."""

from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner

from visionops.evaluation.aicity_format import load_tracks
from visionops.inference.commands import infer
from visionops.models.sparse4d.model import Sparse4D
from visionops.models.sparse4d.presets import CARD_CLASSES, DEFAULT

CFG = DEFAULT.replace(num_anchor=32, num_temp_instances=16, input_size=(96, 64), embed_dims=64, fpn_out_channels=64,
                      anchor_embed_dims=(32, 8, 8, 16), num_decoder=2, ffn_channels=128, num_levels=3)


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A dummy checkpoint file; the loader returns a tiny confident model and the meta the module promises."""
    torch.manual_seed(0)
    model = Sparse4D(CFG)
    with torch.no_grad():
        for layer in model.decoder.layers:
            if hasattr(layer, "cls_layers"):
                layer.cls_layers[-1].bias.fill_(5.0)
    loaded = []

    def load_sparse4d_checkpoint(path):
        loaded.append(path)
        return model, {"classes": list(CARD_CLASSES), "input_size": [96, 64]}

    from visionops.training import sparse4d_fit

    monkeypatch.setattr(sparse4d_fit, "load_sparse4d_checkpoint", load_sparse4d_checkpoint)
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"stub")
    return path, loaded


def run(*args):
    return CliRunner().invoke(infer, ["sparse4d", *map(str, args)], catch_exceptions=False)


def test_raw_scene_to_track_file(converted_scene, checkpoint, tmp_path):
    scene, _, _ = converted_scene
    ckpt, loaded = checkpoint
    out = tmp_path / "pred" / "Warehouse_000.txt"
    result = run("--checkpoint", ckpt, "--scene", scene, "--out", out, "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    assert loaded == [ckpt]
    rows, notes = load_tracks(out)  # the strict reader accepts it
    assert notes == [] and len(rows) > 0
    assert set(rows[:, 0].tolist()) == {0.0}  # scene id from the folder name
    assert set(rows[:, 3].tolist()) == {0.0, 1.0, 2.0, 3.0}
    assert rows[:, 2].min() >= 1
    assert "4 frames" in result.output and f"{len(rows)} track rows" in result.output and "ms/frame" in result.output


def test_options_frame_step_scene_id_and_ovpkl_input(converted_scene, checkpoint, tmp_path):
    scene, root, pkl = converted_scene
    ckpt, _ = checkpoint
    out = tmp_path / "a.txt"
    result = run("--checkpoint", ckpt, "--scene", scene, "--out", out, "--frame-step", "2", "--scene-id", "17",
                 "--input-size", "64", "48", "--camera", "Camera_0001", "--score-threshold", "0.5")
    assert result.exit_code == 0, result.output
    rows, _ = load_tracks(out)
    assert set(rows[:, 3].tolist()) == {0.0, 2.0} and set(rows[:, 0].tolist()) == {17.0}
    from_pkl = tmp_path / "b.txt"
    result = run("--checkpoint", ckpt, "--scene", pkl, "--data-root", root, "--out", from_pkl, "--max-frames", "2")
    assert result.exit_code == 0, result.output
    pkl_rows, _ = load_tracks(from_pkl)
    assert set(pkl_rows[:, 3].tolist()) == {0.0, 1.0} and set(pkl_rows[:, 0].tolist()) == {0.0}


def test_errors_are_clean(converted_scene, checkpoint, tmp_path):
    scene, _, _ = converted_scene
    ckpt, _ = checkpoint
    odd = tmp_path / "MyScene"
    shutil.copytree(scene, odd)
    result = run("--checkpoint", ckpt, "--scene", odd, "--out", tmp_path / "x.txt")
    assert result.exit_code == 2 and "pass --scene-id" in result.output
    (odd / "calibration.json").unlink()
    result = run("--checkpoint", ckpt, "--scene", odd, "--out", tmp_path / "x.txt", "--scene-id", "3")
    assert result.exit_code == 1 and "calibration.json: missing" in result.output
    assert not (tmp_path / "x.txt").exists()
