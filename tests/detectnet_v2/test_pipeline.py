"""The DetectNet_v2 stage functions chained on a toy KITTI set: train -> prune -> retrain -> evaluate."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch
from detectnet_factories import toy_kitti

from visionops.config import Params
from visionops.pipeline import detectnet, detectnet_evaluate


@pytest.mark.slow
def test_train_prune_retrain_evaluate_chain(tmp_path):
    toy_kitti(tmp_path / "data" / "kitti" / "train", count=4, seed=0)
    toy_kitti(tmp_path / "data" / "kitti" / "val", count=2, seed=1)
    optim = {"epochs": 2, "batch_size": 4, "validate_every": 1, "max_lr": 1e-3, "min_lr": 1e-5}
    params = Params.model_validate({"detectnet_v2": {
        "input_size": [128, 96], "classes": ["person", "forklift"], "workers": 0,
        "targets": {"per_class_cov_radius": {"person": 1.0}},
        "train": {**optim, "l1_weight": 1e-5}, "retrain": {**optim, "l1_weight": 0.0}},
        "prune": {"threshold": 0.9}})  # freshly initialised filters have similar norms
    messages = []
    detectnet.fit(params, phase="train", root=tmp_path, echo=messages.append)
    assert (tmp_path / detectnet.PHASE1).is_file()
    # Lightning checkpoints load with weights_only=True (no pickled objects)
    checkpoint = torch.load(tmp_path / detectnet.PHASE1, map_location="cpu", weights_only=True)
    assert checkpoint["pruning_history"] == [] and checkpoint["class_names"] == ["person", "forklift"]

    report = detectnet.prune(params, root=tmp_path, echo=messages.append)
    assert report["params_after"] < report["params_before"]
    assert (tmp_path / "reports/prune/detectnet_v2.md").read_text().count("|") > 10

    detectnet.fit(params, phase="retrain", root=tmp_path, echo=messages.append)
    model, history = detectnet.load_checkpoint_model(tmp_path / detectnet.RETRAINED, params.detectnet_v2)
    assert history and sum(p.numel() for p in model.parameters()) == report["params_after"]

    metrics = detectnet_evaluate.evaluate(params, root=tmp_path, echo=messages.append)
    saved = json.loads((tmp_path / detectnet_evaluate.METRICS).read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert set(saved) == {"phase1", "retrained"} and saved["retrained"]["params"] == report["params_after"]
    # TAO's evaluation_box_config (20 x 10 px) keeps every toy box (>= 24 x 32), so both scorings agree.
    assert saved["phase1"]["evaluation_box"] == {"min_height": 20.0, "min_width": 10.0}
    assert saved["phase1"]["all_sizes"]["mAP_integrated"] == saved["phase1"]["mAP_integrated"]
    assert saved["retrained"]["all_sizes"]["TP"] == saved["retrained"]["TP"]
    assert (tmp_path / "plots/detectnet_v2/pr_retrained.csv").read_text().startswith("class,recall,precision")
    assert (tmp_path / detectnet_evaluate.PR_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every FP and FN of the KPI counts has a cause; recall by height covers every scored GT box
    for kpis in saved.values():
        errors = kpis["errors"]
        assert sum(errors["false_positives"].values()) == kpis["FP"]
        assert sum(errors["false_negatives"].values()) == kpis["FN"]
        assert list(errors["recall_by_height"]) == ["20-40", "40-80", "80-inf"]
        assert sum(b["num_gt"] for b in errors["recall_by_height"].values()) == kpis["TP"] + kpis["FN"]
    assert (tmp_path / detectnet_evaluate.ERROR_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = mlflow.search_runs(experiment_names=["detectnet_v2"], output_format="list",
                              filter_string="tags.`visionops.run_kind` = 'stage'")  # not the pipeline run
    assert sorted(r.data.tags["visionops.stage"] for r in runs) == [
        "evaluate_detectnet", "prune", "retrain", "train_detectnet"]
    assert all(r.info.status == "FINISHED" for r in runs)
    train_run = next(r for r in runs if r.data.tags["visionops.stage"] == "train_detectnet")
    assert "train/loss_epoch" in train_run.data.metrics and "val/mAP" in train_run.data.metrics
    assert train_run.data.tags["precision"] in ("32-true", "bf16-mixed")
    samples = mlflow.artifacts.list_artifacts(run_id=train_run.info.run_id, artifact_path="samples")
    assert len(samples) >= 2  # one detections image per validation epoch


def test_nan_loss_stops_training_with_the_term_named_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from visionops.models.detectnet_v2.loss import DetectNetLoss

    toy_kitti(tmp_path / "data" / "kitti" / "train", count=4, seed=0)
    toy_kitti(tmp_path / "data" / "kitti" / "val", count=2, seed=1)
    params = Params.model_validate({"detectnet_v2": {
        "input_size": [128, 96], "classes": ["person", "forklift"], "workers": 0,
        "targets": {"per_class_cov_radius": {"person": 1.0}},
        "train": {"epochs": 1, "batch_size": 2, "validate_every": 1}}})
    previous = tmp_path / detectnet.PHASE1
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"an earlier good checkpoint")
    original = DetectNetLoss.forward

    def poisoned(self, cov_logits, bbox_pred, targets):
        losses = original(self, cov_logits, bbox_pred, targets)
        losses["bbox"] = losses["bbox"] * float("nan")
        losses["total"] = losses["cov"] + losses["bbox"]
        return losses

    monkeypatch.setattr(DetectNetLoss, "forward", poisoned)
    with pytest.raises(FloatingPointError, match=r"'total'.* step 0|'bbox'.*step 0"):
        detectnet.fit(params, phase="train", root=tmp_path, echo=lambda m: None)
    assert previous.read_bytes() == b"an earlier good checkpoint"
    assert not list(previous.parent.glob(".tmp-*"))
    runs = mlflow.search_runs(experiment_names=["detectnet_v2"], output_format="list",
                              filter_string="tags.`visionops.run_kind` = 'stage'")
    assert [r.info.status for r in runs] == ["FAILED"]
