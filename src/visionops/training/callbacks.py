"""Lightning callbacks and helpers shared by the trainers: epoch-seeded augmentation, detection samples
in MLflow, atomic checkpoint writing."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L

from visionops import atomic


class SetEpoch(L.Callback):
    """Tell the training dataset and batch sampler the epoch, so augmentation and sequence draws change per
    epoch yet stay reproducible (Lightning itself only reaches ``loader.sampler``, not a batch sampler)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        for target in (getattr(loader, "dataset", None), getattr(loader, "batch_sampler", None)):
            if hasattr(target, "set_epoch"):
                target.set_epoch(trainer.current_epoch)


class MlflowSamples(L.Callback):
    """After each validation, log an image of the first ``count`` validation samples with the GT boxes
    (white) and the detections (class colours, with confidence) to the active MLflow run."""

    def __init__(self, dataset, count: int = 2) -> None:
        self.dataset, self.count = dataset, count

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import mlflow  # noqa: PLC0415
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415
        from PIL import Image, ImageDraw  # noqa: PLC0415

        if mlflow.active_run() is None or trainer.sanity_checking:
            return
        tiles = []
        names = list(pl_module.config.class_names)
        for index in range(min(self.count, len(self.dataset))):
            image, boxes, labels = self.dataset.sample(index)
            with torch.no_grad():
                dets = pl_module.detect(torch.from_numpy(image.transpose(2, 0, 1)).unsqueeze(0).to(pl_module.device))[0]
            tile = Image.fromarray((image * 255).astype(np.uint8))
            draw = ImageDraw.Draw(tile)
            for box in boxes:
                draw.rectangle([float(v) for v in box], outline=(255, 255, 255))
            for x1, y1, x2, y2, conf, cls, _ in dets:
                colour = tuple(int(c) for c in np.array([230, 57, 70]) * (1 - cls / max(len(names), 1)) + 25)
                draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
                draw.text((x1 + 2, y1 + 1), f"{names[int(cls)]} {conf:.2f}", fill=colour)
            tiles.append(tile)
        if not tiles:
            return
        mosaic = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
        x = 0
        for tile in tiles:
            mosaic.paste(tile, (x, 0))
            x += tile.width
        mlflow.log_image(mosaic, f"samples/epoch_{trainer.current_epoch:03d}.png")


def atomic_save_checkpoint(trainer: L.Trainer, path: str | os.PathLike) -> Path:
    """``trainer.save_checkpoint`` to a temporary sibling, then rename: an interrupted save never leaves a
    truncated checkpoint where a good one was."""
    with atomic.atomic_path(path) as tmp:
        trainer.save_checkpoint(tmp, weights_only=False)
    return Path(path)
