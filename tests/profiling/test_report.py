"""Report files of a synthetic result: JSON, markdown in the cards' layout, PNG, DVC plot CSV."""

from __future__ import annotations

import csv
import json

import pytest

from visionops.config.profile_params import BACKEND_NAMES
from visionops.profiling.curve import BackendCurve
from visionops.profiling.device import DeviceInfo
from visionops.profiling.report import markdown, plot_csv, write_plot_csv, write_reports
from visionops.profiling.result import ProfileResult
from visionops.profiling.timing import summarize

DEVICE = DeviceInfo("cuda", "NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3",
                    {"versions": {"torch": "2.13.0"}, "cpu_count": 2, "torch_threads": 1})


def _curve(backend, per_size_ms, sizes):
    curve = BackendCurve(backend, setup_s=1.5)
    for n in sizes:
        base = per_size_ms * n + 2
        curve.points[n] = summarize([base * f for f in (0.98, 1.0, 1.01, 1.02, 1.0)])
    return curve


def _sparse4d_result():
    curves = [_curve("pytorch", 8.0, [1, 2, 4, 8]), _curve("tensorrt", 1.0, [1, 2, 4, 8]),
              BackendCurve("onnxruntime_cuda", status="skipped", reason="no CUDAExecutionProvider")]
    curves[1].errors[16] = "RuntimeError: out of memory"
    return ProfileResult("sparse4d", "cameras", DEVICE, curves, {"preset": "full_r101", "input": "960x540"},
                         {"warmup": 3, "repeats": 5, "seed": 0, "fps_targets": [30.0, 15.0, 10.0]})


def test_sparse4d_markdown_has_the_cards_table():
    text = markdown(_sparse4d_result())
    assert text.startswith("# Sparse4D latency on NVIDIA H100 80GB HBM3")
    header = next(line for line in text.splitlines() if line.startswith("| Device |"))
    # the card's column order: every backend at 30 FPS, then at 15, then at 10
    assert header == ("| Device | PyTorch @30 FPS | TensorRT @30 FPS | PyTorch @15 FPS | TensorRT @15 FPS | "
                      "PyTorch @10 FPS | TensorRT @10 FPS |")
    row = next(line for line in text.splitlines() if line.startswith("| 1 x NVIDIA H100"))
    # PyTorch: 8n + 2 <= 33.3 -> 3 (interpolated between 2 and 4); TensorRT n + 2 <= 33.3 for all timed counts
    assert row.split(" | ")[1:3] == ["~3", ">=8"]
    assert "| 4 | 34.00 [" in text  # latency table, PyTorch at 4 cameras
    assert "Frame rate at the smallest timed count (1 camera): PyTorch 100.0 FPS, TensorRT 333.3 FPS." in text
    assert "ONNX Runtime CUDA: skipped: no CUDAExecutionProvider" in text
    assert "TensorRT at cameras = 16: RuntimeError: out of memory" in text


def test_detectnet_markdown_has_the_dashcamnet_table():
    curves = [_curve("onnxruntime_cpu", 4.0, [1, 2, 4, 8, 16])]
    result = ProfileResult("detectnet_v2", "batch", DEVICE, curves, {"precision": {"onnxruntime_cpu": "fp32"}},
                           {"warmup": 1, "repeats": 5, "seed": 0, "latency_budget_ms": 33.0})
    text = markdown(result)
    assert "| Device | Backend | Precision | Batch size | Batch latency (ms) | Images/s |" in text
    # 4b + 2 < 33 -> the largest timed batch is 4 (18 ms): 222 images/s; batch 1: 6 ms, 167 images/s
    assert "| NVIDIA H100 80GB HBM3 | ONNX Runtime CPU | fp32 | 4 | 18.00 | 222.2 |" in text
    assert "| NVIDIA H100 80GB HBM3 | ONNX Runtime CPU | fp32 | 1 | 6.00 | 166.7 |" in text
    assert result.metrics()["onnxruntime_cpu.max_batch_under_budget"] == 4.0
    slow = ProfileResult("detectnet_v2", "batch", DEVICE, [_curve("pytorch", 40.0, [1, 2])], {},
                         {"latency_budget_ms": 33.0})
    assert "| PyTorch | fp32 | none: batch 1 takes longer than 33 ms | - | - |" in markdown(slow)


def test_write_reports_json_png_csv(tmp_path):
    result = _sparse4d_result()
    other = tmp_path / "sparse4d" / "some-other-gpu.json"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    files = write_reports(result, tmp_path / "sparse4d")
    assert {p.name for p in files.values()} == {"nvidia-h100-80gb-hbm3.json", "nvidia-h100-80gb-hbm3.md",
                                                 "nvidia-h100-80gb-hbm3.png"}
    assert other.read_text() == "{}"  # other devices' reports stay
    data = json.loads(files["json"].read_text())
    assert data["device"]["slug"] == "nvidia-h100-80gb-hbm3"
    assert data["capacity"]["tensorrt"]["30"] == {"budget_ms": pytest.approx(1000 / 30), "size": 8,
                                                  "bound": "at_least", "latency_ms": pytest.approx(10.0)}
    backends = {b["backend"]: b for b in data["backends"]}
    assert backends["onnxruntime_cuda"]["status"] == "skipped" and backends["pytorch"]["points"][0]["size"] == 1
    assert len(backends["pytorch"]["points"][0]["samples_ms"]) == 5
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(files["png"]) as image:
        assert image.size[0] > 400 and image.size[1] > 300
    assert not list((tmp_path / "sparse4d").glob(".tmp-*"))  # atomic writes leave no temporaries

    csv_path = write_plot_csv(result, tmp_path / "plots" / "sparse4d.csv")
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0]) == ["cameras", *BACKEND_NAMES]  # every backend has a column: dvc.yaml's y list holds
    assert [r["cameras"] for r in rows] == ["1", "2", "4", "8"]
    assert rows[0]["onnxruntime_cuda"] == "" and float(rows[3]["pytorch"]) == pytest.approx(66.0)


def test_noisy_points_are_flagged():
    from visionops.profiling.report import noisy_points

    result = _sparse4d_result()
    assert noisy_points(result) == [] and "**Noisy**" not in markdown(result)
    result.curves[0].points[2] = summarize([10.0, 30.0, 11.0, 35.0, 12.0])  # p10-p90 spread > half the median
    assert noisy_points(result) == ["PyTorch @ 2"]
    assert "**Noisy**: p90 - p10 exceeds 0.5 x the median at PyTorch @ 2." in markdown(result)


def test_empty_result_still_reports():
    result = ProfileResult("sparse4d", "cameras", DEVICE, [BackendCurve("pytorch", "skipped", "no checkpoint")],
                           {}, {"fps_targets": [30.0]})
    text = markdown(result)
    assert "No backend produced a measurement." in text and "PyTorch: skipped: no checkpoint" in text
    assert plot_csv(result).strip() == "cameras," + ",".join(BACKEND_NAMES)


def test_headline_numbers_for_the_pipeline_run():
    sparse = _sparse4d_result().headline()
    # TensorRT is the fastest at 1 camera (1 + 2 = 3 ms); the capacity is the best backend's (>= 8 measured)
    assert sparse == {"latency_ms": 3.0, "cameras_at_30fps": 8.0, "cameras_at_15fps": 8.0, "cameras_at_10fps": 8.0}
    curves = [_curve("onnxruntime_cpu", 4.0, [1, 2, 4, 8]), _curve("pytorch", 8.0, [1, 2, 4])]
    detect = ProfileResult("detectnet_v2", "batch", DEVICE, curves, {}, {"latency_budget_ms": 33.0}).headline()
    assert detect == {"latency_ms": 6.0, "max_batch_under_budget": 4.0, "images_per_s": pytest.approx(4000 / 18)}
    empty = ProfileResult("sparse4d", "cameras", DEVICE, [BackendCurve("pytorch", "skipped", "x")], {}, {})
    assert empty.headline() == {}
