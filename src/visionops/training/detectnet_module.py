"""Lightning module of DetectNet_v2 (phase 1 with L1 regularisation, phase 2 retraining after pruning).

One training step: GridBox targets (from the DataLoader) -> TAO's loss + ``l1_weight * sum|w|`` of every
conv -> Adam with TAO's soft-start annealing schedule stepped per batch. A step whose loss is NaN or
infinite stops training with an error naming the loss term (the last good checkpoint is kept by the
checkpoint callback, which only ever saved finite models).

Validation decodes the heads (sigmoid coverage, LTRB boxes), clusters them per class (DBSCAN or NMS),
and computes the DashCamNet KPIs and VOC AP (:mod:`visionops.evaluation.kpi`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch

from visionops.models.detectnet_v2.box_coding import decode_ltrb
from visionops.models.detectnet_v2.loss import DetectNetLoss, check_finite
from visionops.models.detectnet_v2.model import DetectNetV2, check_input_size
from visionops.models.detectnet_v2.postprocess import ClusteringConfig, postprocess_batch
from visionops.training.lr_schedule import soft_start_annealing_lambda


@dataclass
class DetectNetTrainConfig:
    """What the module needs; the stage fills it from ``params.yaml`` (``detectnet_v2``)."""

    class_names: Sequence[str]
    input_size: tuple[int, int] = (480, 272)
    arch: str = "resnet18"
    all_projections: bool = True
    min_lr: float = 5e-6
    max_lr: float = 5e-4
    soft_start: float = 0.1
    annealing: float = 0.7
    l1_weight: float = 3e-9
    coverage_foreground_weight: float = 0.05
    class_weights: Sequence[float] | None = None
    objective_weights: tuple[float, float] = (1.0, 10.0)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    iou_threshold: float = 0.5
    score_threshold: float = 0.3
    eval_min_height: float = 0.0
    eval_min_width: float = 0.0


class DetectNetModule(L.LightningModule):
    """DetectNet_v2 training and validation.

    Args:
        config: model, loss, schedule and evaluation settings.
        total_steps: optimizer steps of the whole run (the LR schedule spans them).
        model: an existing (e.g. pruned) model to train instead of a fresh one (phase 2).
    """

    def __init__(self, config: DetectNetTrainConfig, total_steps: int, model: DetectNetV2 | None = None) -> None:
        super().__init__()
        check_input_size(*config.input_size)
        self.config, self.total_steps = config, int(total_steps)
        num_classes = len(config.class_names)
        self.model = model or DetectNetV2(num_classes, arch=config.arch, all_projections=config.all_projections)
        self.criterion = DetectNetLoss(num_classes, class_weights=config.class_weights,
                                       objective_weights=config.objective_weights,
                                       coverage_foreground_weight=config.coverage_foreground_weight,
                                       l1_weight=config.l1_weight)
        self._predictions: list[np.ndarray] = []
        self._ground_truth: list[np.ndarray] = []
        self.last_kpis: dict[str, Any] | None = None
        # Set for a pruned model: saved in every checkpoint so the architecture can be rebuilt on load.
        self.pruning_history: list = []

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pruning_history"] = self.pruning_history
        checkpoint["class_names"] = list(self.config.class_names)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(_channels_last(images))

    def on_fit_start(self) -> None:
        # oneDNN (CPU) and cuDNN (tensor cores) run convolutions fastest on NHWC: 1.3x per CPU step in fp32.
        # Only the memory layout changes; state-dict values, and so checkpoints, are the same.
        self.model.to(memory_format=torch.channels_last)

    def on_validation_start(self) -> None:
        self.model.to(memory_format=torch.channels_last)

    # -- training ------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        cov_logits, bbox = self(batch["image"])
        losses = self.criterion(cov_logits, bbox, batch["targets"])
        l1 = self.criterion.regularization(self.model)
        total = losses["total"] + l1
        check_finite({"total": total, "cov": losses["cov"], "bbox": losses["bbox"], "l1": l1}, self.global_step)
        batch_size = len(batch["image"])
        self.log_dict({"train/loss": total, "train/cov": losses["cov"], "train/bbox": losses["bbox"],
                       "train/l1": l1}, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False,
                 batch_size=batch_size)
        return total

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.max_lr, betas=(0.9, 0.999), eps=1e-8)
        schedule = soft_start_annealing_lambda(max(self.total_steps, 1), self.config.min_lr, self.config.max_lr,
                                               self.config.soft_start, self.config.annealing)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- validation ----------------------------------------------------------------------------------
    def detect(self, images: torch.Tensor) -> list[np.ndarray]:
        """Detections per image: (K, 7) ``x1, y1, x2, y2, confidence, class_id, cells`` in input pixels."""
        return self._decode(*self(images))

    def _decode(self, cov_logits: torch.Tensor, bbox: torch.Tensor) -> list[np.ndarray]:
        width, height = self.config.input_size
        boxes = decode_ltrb(bbox.float(), image_size=(width, height))
        return postprocess_batch(torch.sigmoid(cov_logits.float()), boxes, self.config.clustering)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        cov_logits, bbox = self(batch["image"])
        if "targets" in batch:
            # The training loss (without L1) on val: a smooth signal while the KPIs are still 0 early in training
            # (what a reduced-budget sweep sees); comparable across runs with the same loss weights.
            losses = self.criterion(cov_logits.float(), bbox.float(), batch["targets"])
            self.log("val/loss", losses["total"], on_step=False, on_epoch=True, batch_size=len(batch["image"]))
        detections = self._decode(cov_logits, bbox)
        for dets, boxes, labels in zip(detections, batch["boxes"], batch["labels"], strict=True):
            self._predictions.append(np.asarray(dets[:, :6], dtype=np.float64))
            gt = np.concatenate([boxes.cpu().numpy().reshape(-1, 4), labels.cpu().numpy().reshape(-1, 1)], axis=1)
            self._ground_truth.append(gt.astype(np.float64))

    def on_validation_epoch_start(self) -> None:
        self._predictions, self._ground_truth = [], []

    def on_validation_epoch_end(self) -> None:
        from visionops.evaluation.kpi import evaluate_detections  # noqa: PLC0415

        if not self._predictions:
            return
        result = evaluate_detections(self._predictions, self._ground_truth, list(self.config.class_names),
                                     iou_thresholds=self.config.iou_threshold,
                                     score_threshold=self.config.score_threshold,
                                     min_height=self.config.eval_min_height, min_width=self.config.eval_min_width)
        self.last_kpis = result.to_json()
        summary = self.last_kpis
        metrics = {"val/mAP": summary["mAP_integrated"], "val/mAP_11": summary["mAP_11"],
                   "val/precision": summary["precision"], "val/recall": summary["recall"],
                   "val/accuracy": summary["accuracy"]}
        self.log_dict({k: float(v or 0.0) for k, v in metrics.items()}, prog_bar=True)


def _channels_last(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in NHWC memory order (same values), the layout the model's weights use in training."""
    return images.contiguous(memory_format=torch.channels_last)
