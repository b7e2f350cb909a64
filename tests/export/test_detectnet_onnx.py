"""DetectNet_v2 -> ONNX with DeepStream's tensor names, dynamic batch, equal to PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionops.export.detectnet_onnx import INPUT_NAME, OUTPUT_NAMES, export_detectnet_onnx
from visionops.export.onnx_io import inference_session, read_metadata
from visionops.models.detectnet_v2.model import DetectNetV2


def test_names_shapes_dynamic_batch_and_parity(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = DetectNetV2(4, arch="resnet18").train()
    path = export_detectnet_onnx(model, tmp_path / "m.onnx", (96, 64), ["car", "bicycle", "person", "road_sign"])
    assert model.training  # the caller's mode is restored
    session = inference_session(path)
    (inp,) = session.get_inputs()
    assert inp.name == INPUT_NAME == "input_1" and inp.shape[1:] == [3, 64, 96] and isinstance(inp.shape[0], str)
    assert [(o.name, o.shape[1:]) for o in session.get_outputs()] == [
        ("output_cov/Sigmoid", [4, 4, 6]), ("output_bbox/BiasAdd", [16, 4, 6])]
    images = np.random.default_rng(0).random((5, 3, 64, 96), dtype=np.float32)
    with torch.no_grad():
        expected = model.eval().predict(torch.from_numpy(images))
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
    for have, want in zip(got, expected, strict=True):
        assert have.shape == tuple(want.shape) and np.abs(have - want.numpy()).max() <= 1e-4
    meta = read_metadata(path)
    assert meta["classes"] == ["car", "bicycle", "person", "road_sign"] and meta["bbox_norm"] == 35.0


def test_bad_sizes_and_class_lists(tmp_path):
    model = DetectNetV2(2)
    with pytest.raises(ValueError, match="multiples of 16"):
        export_detectnet_onnx(model, tmp_path / "m.onnx", (100, 64))
    with pytest.raises(ValueError, match="3 class names for a model with 2 classes"):
        export_detectnet_onnx(model, tmp_path / "m.onnx", (96, 64), ["a", "b", "c"])
    assert not (tmp_path / "m.onnx").exists()


def test_export_info_command(tmp_path):
    from click.testing import CliRunner

    from visionops.cli import main

    model = DetectNetV2(2)
    path = export_detectnet_onnx(model, tmp_path / "m.onnx", (64, 32), ["person", "forklift"])
    result = CliRunner().invoke(main, ["export", "info", str(path)])
    assert result.exit_code == 0, result.output
    assert "input_1" in result.output and "output_cov/Sigmoid" in result.output and '"forklift"' in result.output
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    result = CliRunner().invoke(main, ["export", "info", str(tmp_path / "bad.onnx")])
    assert result.exit_code == 1 and "not a valid ONNX model" in result.output
