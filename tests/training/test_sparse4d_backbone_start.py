"""``sparse4d.pretrained``: the train_sparse4d stage starts Sparse4D's ResNet from DetectNet_v2's phase-1 checkpoint
(the default) or a torchvision file, logs what it loaded, and names the missing file with the fix."""

from __future__ import annotations

import mlflow
import pytest
import torch

from visionops.config import Params
from visionops.models.backbones import ResNet
from visionops.models.detectnet_v2.model import DetectNetV2
from visionops.pipeline.sparse4d import load_backbone


def test_default_start_is_the_detectnet_phase1_checkpoint_and_the_card_preset_drops_it():
    from visionops.config.presets import get_preset  # noqa: PLC0415

    assert Params().sparse4d.pretrained == "models/detectnet_v2/phase1.ckpt"
    assert get_preset("full_r101").values["sparse4d.pretrained"] is None  # a ResNet-18 cannot fill a ResNet-101


def test_detectnet_checkpoint_fills_the_backbone_and_is_logged(tmp_path):
    torch.manual_seed(0)
    detectnet = DetectNetV2(6, arch="resnet18", all_projections=True)
    path = tmp_path / "phase1.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in detectnet.state_dict().items()}, "epoch": 1}, path)
    backbone = ResNet(18)
    lines: list[str] = []
    with mlflow.start_run() as run:
        report = load_backbone(backbone, path, echo=lines.append)
    assert len(report["loaded"]) == 120 and report["missing"] == []
    assert torch.equal(backbone.layer4[1].conv1.weight, detectnet.backbone.layer4[1].conv1.weight)
    tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["pretrained"] == str(path) and tags["pretrained.loaded"] == "120"
    assert tags["pretrained.unexpected"] == "30"  # DetectNet_v2's extra projections: no place in a plain ResNet
    assert "120 tensors loaded" in lines[0]


def test_missing_detectnet_checkpoint_names_the_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"sparse4d\.pretrained: .*phase1\.ckpt not found.*"
                                                r"dvc repro train_detectnet.*null"):
        load_backbone(ResNet(18), tmp_path / "models" / "detectnet_v2" / "phase1.ckpt")


def test_a_checkpoint_without_backbone_weights_is_refused_with_its_keys(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.head.weight": torch.ones(2)}}, path)
    with pytest.raises(ValueError, match=r"no model\.backbone\.\* weights .*model\.head\.weight"):
        load_backbone(ResNet(18), path)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.ckpt is not a visionops checkpoint"):
        load_backbone(ResNet(18), tmp_path / "junk.ckpt")
