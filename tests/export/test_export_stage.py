"""The export stages on tiny checkpoints: ONNX files, parity report, TensorRT outcome, MLflow registry, errors."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch
from detectnet_factories import toy_kitti

from visionops.config import Params, apply_overrides, validate_params
from visionops.export.onnx_io import read_metadata
from visionops.export.tensorrt import tensorrt_status
from visionops.models.detectnet_v2.model import DetectNetV2
from visionops.models.sparse4d.model import Sparse4D
from visionops.pipeline import export
from visionops.training.sparse4d_module import config_to_dict

TINY = {"embed_dims": 64, "fpn_out_channels": 64, "anchor_embed_dims": [32, 8, 8, 16], "num_decoder": 2,
        "ffn_channels": 128, "num_groups": 4, "num_heads": 4, "num_levels": 2, "num_depth_layers": 1}


def _params(**overrides) -> Params:
    data = {"detectnet_v2": {"input_size": [64, 32]},
            "sparse4d": {"num_anchor": 32, "input_size": [96, 64], "model": dict(TINY)},
            "export": {"sparse4d_cameras": 2}}
    return validate_params(apply_overrides(data, [f"{k}={v}" for k, v in overrides.items()]))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Checkpoints in the training stages' formats (+ KITTI train images for parity/calibration)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export_repo")
    params = _params()
    toy_kitti(root / "data/kitti/train", count=3)
    net = params.detectnet_v2
    (root / "models/detectnet_v2").mkdir(parents=True)
    for name in ("phase1", "retrained"):
        model = DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections)
        torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
                   root / f"models/detectnet_v2/{name}.ckpt")
    cfg = params.sparse4d.architecture()
    model = Sparse4D(cfg)
    (root / "models/sparse4d").mkdir(parents=True)
    torch.save({"hyper_parameters": {"model": config_to_dict(cfg),
                                     "meta": {"preset": "default", "classes": list(cfg.class_names),
                                              "input_size": list(cfg.input_size)}},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               root / "models/sparse4d/model.ckpt")
    return root


@pytest.fixture(autouse=True)
def _store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)


def test_detectnet_export_stage(repo):
    report = export.export_detectnet(_params(), root=repo, echo=lambda *_: None)
    folder = repo / export.DETECTNET_DIR
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.onnx", "unpruned.onnx"]
    assert json.loads((folder / "export.json").read_text()) == report
    for name in ("model", "unpruned"):
        entry = report["models"][name]
        assert entry["parity_max_abs_diff"] <= 1e-4 and set(entry["parity"]) == {"batch1", "batch3"}
        assert entry["parity"]["batch3"]["output_cov/Sigmoid"]["max_abs"] <= entry["parity_max_abs_diff"]
        assert read_metadata(folder / f"{name}.onnx")["input_size"] == [64, 32]
    available, reason = tensorrt_status()
    assert report["tensorrt"]["available"] is available
    if not available:  # this machine: the engines are reported as skipped with the reason, the stage goes on
        skipped = report["tensorrt"]["skipped"]
        assert set(skipped) == {"fp16", "int8"} and reason in skipped["int8"]
    version = mlflow.MlflowClient().get_model_version_by_alias("visionops-detectnet_v2", "current")
    assert str(version.version) == report["registry"]["version"] == "1"
    loaded = mlflow.onnx.load_model("models:/visionops-detectnet_v2@current")
    assert [o.name for o in loaded.graph.output] == ["output_cov/Sigmoid", "output_bbox/BiasAdd"]


def test_sparse4d_export_stage_and_alias_moves(repo):
    first = export.export_sparse4d(_params(), root=repo, echo=lambda *_: None)
    second = export.export_sparse4d(_params(**{"sparse4d.infer.score_threshold": 0.3}), root=repo,
                                    echo=lambda *_: None)
    assert first["models"]["model"]["parity_max_abs_diff"] <= 1e-4
    assert set(first["models"]["model"]["parity"]) == {"1cams_cold", "3cams_warm"}
    meta = read_metadata(repo / export.SPARSE4D_DIR / "model.onnx")
    assert meta["id_threshold"] == 0.3 and meta["preset"] == "default"  # inference settings from the params
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("visionops-sparse4d", "current").version) == \
        second["registry"]["version"] == "2"
    run = client.get_run(second["run_id"])
    assert run.data.tags["tensorrt"] and "model.parity_max_abs_diff" in run.data.metrics


def test_checkpoint_from_other_params_fails_naming_the_mismatch(repo):
    with pytest.raises(export.CheckpointMismatch, match=r"num_anchor|instance_bank.anchor: checkpoint \(32, 11\)"):
        export.export_sparse4d(_params(**{"sparse4d.num_anchor": 48}), root=repo, echo=lambda *_: None)
    with pytest.raises(export.CheckpointMismatch, match=r"input_size: checkpoint \[96, 64\], params \[128, 64\]"):
        export.export_sparse4d(_params(**{"sparse4d.input_size": "[128, 64]"}), root=repo, echo=lambda *_: None)
    with pytest.raises(export.CheckpointMismatch, match="does not match detectnet_v2 params.*4 classes"):
        classes = "[person, forklift, agilitydigit, fouriergr1t2]"
        export.export_detectnet(_params(**{"detectnet_v2.classes": classes}), root=repo, echo=lambda *_: None)
    # a failed export leaves the previous folder untouched
    assert (repo / export.SPARSE4D_DIR / "model.onnx").is_file() or not (repo / export.SPARSE4D_DIR).exists()


def test_parity_gate_is_relative_to_the_output_scale(tmp_path):
    import numpy as np

    reference = np.array([[0.5, 40.0, -3.0]], np.float32)
    close = reference + np.float32(0.02)  # 5e-4 of the largest value 40: within 1e-3
    error = export.parity_error(close, reference)
    assert error["max_abs"] == pytest.approx(0.02, rel=1e-3) and error["normalised"] == pytest.approx(5e-4, rel=1e-3)
    assert export._check_parity(tmp_path / "m.onnx", {"case": {"out": error}}, 1e-3)[0] == error["max_abs"]
    wrong = export.parity_error(reference[:, ::-1].copy(), reference)  # a real bug: errors of the output's size
    with pytest.raises(RuntimeError, match=r"m.onnx: ONNX Runtime differs from PyTorch by 3\.50e\+00"):
        export._check_parity(tmp_path / "m.onnx", {"case": {"out": wrong}}, 1e-3)
    velocity = export.parity_error(np.full((1, 11), 1.0, np.float32), np.zeros((1, 11), np.float32), velocity_dt=0.1)
    assert velocity["max_abs"] == 1.0 and export.parity_error(
        np.r_[np.zeros(8), np.ones(3)].astype(np.float32)[None], np.zeros((1, 11), np.float32),
        velocity_dt=0.1)["max_abs"] == pytest.approx(0.1)
