"""`visionops infer sparse4d --onnx` writes the same tracks as the PyTorch model it was exported from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from visionops.evaluation.aicity_format import load_tracks
from visionops.export.sparse4d_onnx import export_sparse4d_onnx
from visionops.inference.commands import infer
from visionops.models.sparse4d.model import Sparse4D
from visionops.models.sparse4d.presets import CARD_CLASSES, DEFAULT

CFG = DEFAULT.replace(num_anchor=32, num_temp_instances=16, input_size=(96, 64), embed_dims=64, fpn_out_channels=64,
                      anchor_embed_dims=(32, 8, 8, 16), num_decoder=2, ffn_channels=128, num_levels=3)


@pytest.fixture(scope="module")
def model_and_onnx(tmp_path_factory):
    """A tiny model whose class logits start high (every query tracked) and its export."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Sparse4D(CFG)
    with torch.no_grad():
        for layer in model.decoder.layers:
            if hasattr(layer, "cls_layers"):
                layer.cls_layers[-1].bias.fill_(1.0)
    path = export_sparse4d_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx", class_names=list(CARD_CLASSES))
    return model, path


def _run(*args):
    return CliRunner().invoke(infer, ["sparse4d", *map(str, args)], catch_exceptions=False)


def _by_key(rows: np.ndarray) -> dict[tuple[int, int, int], np.ndarray]:
    return {(int(r[3]), int(r[1]), int(r[2])): r[4:] for r in rows}


def test_onnx_tracks_equal_pytorch_tracks(converted_scene, model_and_onnx, tmp_path, monkeypatch):
    scene, _, _ = converted_scene
    model, onnx_path = model_and_onnx
    from visionops.training import sparse4d_fit

    monkeypatch.setattr(sparse4d_fit, "load_sparse4d_checkpoint",
                        lambda path: (model, {"classes": list(CARD_CLASSES), "input_size": [96, 64]}))
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"stub")
    common = ("--scene", scene, "--device", "cpu", "--no-progress", "--score-threshold", "0.3")
    torch_out, onnx_out = tmp_path / "torch.txt", tmp_path / "onnx.txt"
    assert _run("--checkpoint", ckpt, "--out", torch_out, *common).exit_code == 0
    result = _run("--onnx", onnx_path, "--out", onnx_out, *common)
    assert result.exit_code == 0, result.output
    expected, got = _by_key(load_tracks(torch_out)[0]), _by_key(load_tracks(onnx_out)[0])
    assert len(expected) > 20 and {k[0] for k in expected} == {0, 1, 2, 3}  # tracks on every frame
    assert got.keys() == expected.keys()  # same frames, classes and ids
    assert max(np.abs(got[k] - expected[k]).max() for k in expected) <= 1e-3


def test_onnx_command_errors(converted_scene, model_and_onnx, tmp_path):
    scene, _, _ = converted_scene
    _, onnx_path = model_and_onnx
    result = CliRunner().invoke(infer, ["sparse4d", "--onnx", str(onnx_path), "--scene", str(scene), "--out",
                                        str(tmp_path / "x.txt"), "--input-size", "128", "64"])
    assert result.exit_code != 0 and "exported for 96x64" in result.output
    result = CliRunner().invoke(infer, ["sparse4d", "--scene", str(scene), "--out", str(tmp_path / "x.txt")])
    assert result.exit_code != 0 and "exactly one of --checkpoint" in result.output
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    result = CliRunner().invoke(infer, ["sparse4d", "--onnx", str(broken), "--scene", str(scene), "--out",
                                        str(tmp_path / "x.txt")])
    assert result.exit_code != 0 and "not a valid ONNX model" in result.output


def test_int8_calibration_batches_carry_a_real_cache(converted_scene, model_and_onnx):
    """TensorRT's calibrator sees the temporal inputs as deployed: zero cache on a cold start, real ones after."""
    from visionops.export.sparse4d_graph import INPUT_NAMES
    from visionops.pipeline.export import sparse4d_calibration_batches

    _, root, _ = converted_scene
    _, onnx_path = model_and_onnx
    batches = list(sparse4d_calibration_batches(onnx_path, root, 3))
    assert len(batches) == 3 and all(set(b) == set(INPUT_NAMES) for b in batches)
    assert batches[0]["prev_exists"].tolist() == [0.0] and not batches[0]["input_cached_feature"].any()
    for later in batches[1:]:
        assert later["prev_exists"].tolist() == [1.0] and later["interval_mask"].all()
        assert np.abs(later["input_cached_feature"]).mean() > 0.01
        assert later["img"].shape[:3] == (1, 2, 3)  # the scene's 2 cameras
