"""TensorRT engines: built and run where TensorRT and a CUDA GPU exist; elsewhere the capability check says why."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from visionops.export.tensorrt import TensorRTRunner, build_engine, make_entropy_calibrator, tensorrt_status

AVAILABLE, REASON = tensorrt_status()


def test_status_names_what_is_missing():
    if importlib.util.find_spec("tensorrt") is None:
        assert not AVAILABLE and "tensorrt is not installed" in REASON
    elif not torch.cuda.is_available():
        assert not AVAILABLE and "no CUDA GPU" in REASON
    else:
        assert AVAILABLE and "TensorRT" in REASON


def test_builder_refuses_without_capability_or_calibrator(tmp_path):
    with pytest.raises(ValueError, match="INT8 needs a calibrator"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", "int8", {})
    with pytest.raises(ValueError, match="precision must be one of"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", "int4", {})
    if not AVAILABLE:
        with pytest.raises(RuntimeError, match="tensorrt is not installed|no CUDA GPU"):
            build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", "fp16", {})


@pytest.mark.skipif(not AVAILABLE, reason=f"TensorRT engines need TensorRT and a CUDA GPU: {REASON}")
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_detectnet_engine_matches_onnxruntime(tmp_path, precision):  # pragma: no cover - GPU machines only
    from visionops.export.detectnet_onnx import INPUT_NAME, OUTPUT_NAMES, export_detectnet_onnx
    from visionops.export.onnx_io import inference_session
    from visionops.models.detectnet_v2.model import DetectNetV2

    torch.manual_seed(0)
    model = DetectNetV2(2).eval()
    onnx_path = export_detectnet_onnx(model, tmp_path / "m.onnx", (128, 64))
    rng = np.random.default_rng(0)
    batches = [{INPUT_NAME: rng.random((2, 3, 64, 128), dtype=np.float32)} for _ in range(3)]
    calibrator = make_entropy_calibrator(batches, tmp_path / "calibration.bin") if precision == "int8" else None
    engine = build_engine(onnx_path, tmp_path / f"m.{precision}.engine", precision,
                          {INPUT_NAME: ((1, 3, 64, 128), (2, 3, 64, 128), (4, 3, 64, 128))}, calibrator=calibrator)
    runner = TensorRTRunner(engine)
    feeds = {INPUT_NAME: batches[0][INPUT_NAME]}
    got = runner(feeds)
    expected = dict(zip(OUTPUT_NAMES, inference_session(onnx_path).run(None, feeds), strict=True))
    tolerance = 0.05 if precision == "fp16" else 0.25
    for name in OUTPUT_NAMES:
        assert np.abs(got[name] - expected[name]).max() < tolerance
    if precision == "int8":
        assert (tmp_path / "calibration.bin").stat().st_size > 0
    with pytest.raises(ValueError, match="outside the engine's profile"):
        runner({INPUT_NAME: np.zeros((8, 3, 64, 128), np.float32)})
