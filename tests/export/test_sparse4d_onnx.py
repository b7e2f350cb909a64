"""Sparse4D -> ONNX: checker, ONNX Runtime == PyTorch on random inputs (any camera count, cold and warm), errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from visionops.export.onnx_io import ExportError, inference_session, read_metadata
from visionops.export.sparse4d_graph import INPUT_NAMES, Sparse4DFrameGraph, output_names
from visionops.export.sparse4d_onnx import example_inputs, export_sparse4d_onnx
from visionops.models.sparse4d.model import Sparse4D
from visionops.models.sparse4d.presets import DEFAULT

CFG = DEFAULT.replace(num_anchor=40, num_temp_instances=24, input_size=(96, 64), embed_dims=64, fpn_out_channels=64,
                      anchor_embed_dims=(32, 8, 8, 16), num_decoder=3, ffn_channels=128, num_groups=4,
                      num_classes=2, class_names=("Person", "Forklift"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Sparse4D(CFG)
    path = export_sparse4d_onnx(model, tmp_path_factory.mktemp("onnx") / "sparse4d.onnx", num_cameras=3,
                                class_names=["Person", "Forklift"])
    return model, path


def test_file_passes_checker_and_has_the_card_interface(exported):
    model, path = exported
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = inference_session(path)
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert list(inputs) == list(INPUT_NAMES)
    assert inputs["img"][2:] == [3, 64, 96] and isinstance(inputs["img"][1], str)  # dynamic camera axis
    assert inputs["input_cached_feature"][1:] == [24, 64] and inputs["input_cached_anchor"][1:] == [24, 11]
    assert [o.name for o in session.get_outputs()] == list(output_names(3))
    meta = read_metadata(path)
    assert meta["family"] == "sparse4d" and meta["classes"] == ["Person", "Forklift"]
    assert meta["num_temp_instances"] == 24 and meta["time_interval"] == pytest.approx(CFG.default_time_interval)
    assert all(op.op_type != "MSDA" for op in onnx.load(str(path)).graph.node)  # no custom op
    assert any(op.op_type == "GridSample" for op in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize(("cameras", "batch", "prev_exists"), [(1, 1, 0.0), (3, 1, 1.0), (5, 2, 1.0), (2, 3, 0.0)])
def test_onnxruntime_equals_pytorch(exported, cameras, batch, prev_exists):
    model, path = exported
    args = example_inputs(model, cameras, CFG.input_size, batch=batch, seed=cameras + batch, prev_exists=prev_exists)
    with torch.no_grad():
        expected = Sparse4DFrameGraph(model)(*args)
    got = inference_session(path).run(None, {name: a.numpy() for name, a in zip(INPUT_NAMES, args, strict=True)})
    for name, want, have in zip(output_names(3), expected, got, strict=True):
        assert have.shape == tuple(want.shape), name
        diff = np.abs(have - want.numpy())
        if name.startswith("prediction") or name == "output_cached_anchor":
            # Velocity = regressed displacement / dt (x30): compare what the network regresses, metres per frame.
            diff[..., 8:] *= CFG.default_time_interval
        assert diff.max() <= 1e-4, name


def test_graph_cold_start_equals_the_eager_model(exported):
    """prev_exists = 0 with any cache values gives exactly the eager model's first-frame outputs."""
    model, _ = exported
    args = example_inputs(model, 2, CFG.input_size, batch=1, seed=7, prev_exists=0.0)
    model.eval()
    model.reset()
    with torch.no_grad():
        graph = Sparse4DFrameGraph(model)(*args)
        eager = model(args[0], args[1], args[2], timestamp=torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(graph[1], eager["classification"][-1])
    torch.testing.assert_close(graph[-1], eager["anchor"])
    model.reset()


def test_corrupt_or_foreign_files_fail_clearly(exported, tmp_path):
    _, path = exported
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(path.read_bytes()[: 5000])
    with pytest.raises(ExportError, match="broken.onnx: not a valid ONNX model"):
        inference_session(broken)
    with pytest.raises(ExportError, match="ONNX file not found"):
        read_metadata(tmp_path / "missing.onnx")
