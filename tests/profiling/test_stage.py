"""The profile stage end to end on the tiny pipeline folder: reports, DVC plot CSVs, MLflow runs."""

from __future__ import annotations

import csv
import json

import mlflow
import pytest

from visionops.pipeline import profile as stage
from visionops.profiling.device import detect_device


def test_stage_writes_every_report_and_tracks_it(pipeline_root, profile_params, tmp_path):
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(pipeline_root, root)
    messages = []
    results = stage.run(profile_params, root=root, echo=messages.append)
    slug = detect_device("cpu").slug
    for model, size_name in (("sparse4d", "cameras"), ("detectnet_v2", "batch")):
        folder = root / "reports/profile" / model
        assert sorted(p.name for p in folder.iterdir()) == [f"{slug}.json", f"{slug}.md", f"{slug}.png"]
        data = json.loads((folder / f"{slug}.json").read_text())
        status = {b["backend"]: b["status"] for b in data["backends"]}
        assert status["pytorch"] == "ok" and status["onnxruntime_cpu"] == "ok"
        assert status["tensorrt"] == "skipped" and status["onnxruntime_cuda"] == "skipped"
        assert set(data["capacity"]) == {"pytorch", "onnxruntime_cpu"}
        assert data["model_info"]["parameters"] > 0 and data["settings"]["repeats"] == 2
        rows = list(csv.DictReader((root / "plots/profile" / f"{model}.csv").open()))
        assert rows[0][size_name] == "1" and float(rows[0]["onnxruntime_cpu"]) > 0 and rows[0]["tensorrt"] == ""
        assert results[model].device.slug == slug
    sparse4d = json.loads((root / f"reports/profile/sparse4d/{slug}.json").read_text())
    assert set(sparse4d["capacity"]["pytorch"]) == {"30", "15", "10"}
    assert sparse4d["settings"]["warmup"] == 2  # at least two frames before timing: a filled bank
    assert sparse4d["model_info"]["frames_from"].endswith("Warehouse_015")
    detectnet = json.loads((root / f"reports/profile/detectnet_v2/{slug}.json").read_text())
    assert detectnet["capacity"]["onnxruntime_cpu"]["budget_ms"] == 33.0
    assert detectnet["model_info"]["pruned"] is False
    assert any("tensorrt: skipped" in m for m in messages)

    client = mlflow.MlflowClient()
    for family in ("sparse4d", "detectnet_v2"):
        experiment = client.get_experiment_by_name(family)
        runs = [r for r in client.search_runs([experiment.experiment_id])
                if r.data.tags.get("visionops.stage") == stage.STAGES[family]]
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        run = runs[0]
        assert run.data.tags["profile.device_slug"] == slug
        size = "cameras_1" if family == "sparse4d" else "batch_1"
        assert run.data.metrics[f"onnxruntime_cpu.{size}.median_ms"] > 0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "profile")}
        assert {f"profile/{slug}.json", f"profile/{slug}.md", f"profile/{slug}.png"} <= artifacts


def test_missing_export_skips_the_graph_backends(pipeline_root, profile_params, tmp_path):
    profile_params.profile.backends = ["pytorch", "onnxruntime_cpu"]
    missing = tmp_path / "exports/detectnet_v2/model.onnx"
    result = stage.profile_detectnet(profile_params, root=pipeline_root, onnx_path=missing, echo=lambda m: None)
    ort = next(c for c in result.curves if c.backend == "onnxruntime_cpu")
    assert ort.status == "skipped" and str(missing) in ort.reason and "export" in ort.reason
    assert [c.status for c in result.curves] == ["ok", "skipped"]


def test_corrupt_export_is_a_clear_error(pipeline_root, profile_params, tmp_path):
    from visionops.export.onnx_io import ExportError

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x08\x07garbage" * 10)
    profile_params.profile.backends = ["onnxruntime_cpu"]
    with pytest.raises(ExportError, match="not a valid ONNX model"):
        stage.profile_detectnet(profile_params, root=pipeline_root, onnx_path=broken, echo=lambda m: None)


def test_missing_checkpoint_names_the_stage(profile_params, tmp_path):
    with pytest.raises(FileNotFoundError, match="retrained.ckpt: checkpoint not found"):
        stage.profile_detectnet(profile_params, root=tmp_path, echo=lambda m: None)


def test_stage_scripts_do_not_shadow_the_standard_library():
    """`python stages/X.py` puts stages/ first on sys.path: a stages/profile.py would be imported as the stdlib
    `profile` by cProfile (which torch.compile imports) and break the stage."""
    import sys
    from pathlib import Path

    stages = Path(__file__).resolve().parents[2] / "stages"
    assert (stages / "profile_latency.py").is_file()
    clashes = sorted(p.name for p in stages.glob("*.py") if p.stem in sys.stdlib_module_names)
    assert clashes == []
