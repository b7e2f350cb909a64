"""``visionops profile``: help, options, errors, and a real run per model."""

from __future__ import annotations

import json

from click.testing import CliRunner
from profiling_helpers import DETECTNET_SIZE

from visionops.cli import main
from visionops.profiling.device import detect_device


def _invoke(tmp_path, *args):
    params = tmp_path / "params.yaml"
    if not params.exists():
        params.write_text("{}\n")
    size = f"detectnet_v2.input_size=[{DETECTNET_SIZE[0]}, {DETECTNET_SIZE[1]}]"
    return CliRunner().invoke(main, ["--params", str(params), "-S", size, "-S", "profile.threads=1", *args],
                              catch_exceptions=False)


def test_help_lists_models_backends_and_examples():
    result = CliRunner().invoke(main, ["profile", "--help"])
    assert result.exit_code == 0
    for text in ("sparse4d | detectnet_v2", "--backend", "onnxruntime_cuda", "--cameras", "--batch", "--repeats",
                 "30 / 15 / 10 FPS", "--preset", "visionops profile sparse4d --cameras 1,2,4,8"):
        assert text in result.output
    assert "profile" in CliRunner().invoke(main, ["--help"]).output


def test_detectnet_run_writes_reports(pipeline_root, tmp_path):
    out = tmp_path / "out"
    result = _invoke(tmp_path, "profile", "detectnet", "--checkpoint",
                     str(pipeline_root / "models/detectnet_v2/retrained.ckpt"), "--onnx",
                     str(pipeline_root / "exports/detectnet_v2/model.onnx"), "--images",
                     str(pipeline_root / "data/kitti/val"), "-b", "pytorch", "-b", "onnxruntime_cpu", "-b",
                     "tensorrt", "--batch", "2,1", "--repeats", "2", "--warmup", "0", "--out", str(out),
                     "--no-track")
    assert result.exit_code == 0, result.output
    slug = detect_device("cpu").slug
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{slug}.{e}" for e in ("json", "md", "png", "csv"))
    data = json.loads((out / f"{slug}.json").read_text())
    assert data["settings"]["sizes"] == [1, 2] and data["settings"]["repeats"] == 2
    assert [b["backend"] for b in data["backends"]] == ["pytorch", "onnxruntime_cpu", "tensorrt"]
    assert "| Device | Backend | Precision | Batch size |" in result.output  # the markdown is printed


def test_sparse4d_untrained_preset_eager(pipeline_root, tmp_path):
    out = tmp_path / "out"
    result = _invoke(tmp_path, "profile", "sparse4d", "--preset", "default", "-b", "pytorch", "--cameras", "1",
                     "--repeats", "1", "--warmup", "0", "--scene", str(pipeline_root / "data/raw/val/Warehouse_015"),
                     "--out", str(out), "--no-track")
    assert result.exit_code == 0, result.output
    data = json.loads(next(out.glob("*.json")).read_text())
    assert data["model_info"]["preset"] == "default" and data["model_info"]["input"] == "320x176"
    assert data["model_info"]["weights"].startswith("untrained")
    assert "@30 FPS" in result.output


def test_option_errors(tmp_path):
    bad = _invoke(tmp_path, "profile", "sparse4d", "--batch", "4")
    assert bad.exit_code == 2 and "--batch is for detectnet_v2" in bad.output
    bad = _invoke(tmp_path, "profile", "detectnet_v2", "--cameras", "x,2")
    assert bad.exit_code == 2 and "comma-separated integers" in bad.output
    bad = _invoke(tmp_path, "profile", "sparse4d", "-b", "openvino")
    assert bad.exit_code == 2 and "'openvino' is not one of" in bad.output
    missing = _invoke(tmp_path, "profile", "detectnet_v2", "--checkpoint", str(tmp_path / "none.ckpt"), "--no-track")
    assert missing.exit_code == 1 and "none.ckpt: checkpoint not found" in missing.output
