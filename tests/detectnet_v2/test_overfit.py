"""Overfitting a handful of images proves that targets, loss, decoding and clustering agree."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from detectnet_factories import CLASSES, H, W, toy_kitti
from torch.utils.data import DataLoader

from visionops.data.kitti_dataset import KittiDetectionDataset, collate
from visionops.models.detectnet_v2.postprocess import ClusteringConfig
from visionops.models.detectnet_v2.target_encoding import GridboxTargetEncoder
from visionops.training.detectnet_module import DetectNetModule, DetectNetTrainConfig


@pytest.mark.slow
def test_overfit_a_handful_of_images_reaches_near_perfect_ap(tmp_path):
    torch.manual_seed(0)
    toy_kitti(tmp_path / "train")
    encoder = GridboxTargetEncoder(len(CLASSES), image_size=(W, H))
    dataset = KittiDetectionDataset(tmp_path / "train", CLASSES, (W, H), encoder=encoder.encode)
    loader = DataLoader(dataset, batch_size=4, shuffle=False, collate_fn=collate)
    steps = 120
    config = DetectNetTrainConfig(class_names=CLASSES, input_size=(W, H), max_lr=2e-3, min_lr=2e-5, l1_weight=0.0,
                                  clustering=ClusteringConfig(coverage_threshold=0.05, dbscan_eps=0.3,
                                                              dbscan_confidence_threshold=0.3))
    module = DetectNetModule(config, total_steps=steps)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1.0,
                        check_val_every_n_epoch=10_000, deterministic=True)
    trainer.fit(module, loader)
    trainer.validate(module, loader, verbose=False)
    kpis = module.last_kpis
    assert kpis["mAP_integrated"] >= 0.95, kpis
    assert kpis["recall"] >= 0.95 and kpis["precision"] >= 0.9, kpis
