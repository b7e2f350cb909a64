"""What one trial trains, per model, reusing the pipeline's own building blocks.

Each objective trains with the trial's params (the reduced budget already applied), logs its curves into the
trial's MLflow run through ``MLFlowLogger(run_id=...)``, reports the monitored validation metric after every
validation epoch through optuna-integration's ``PyTorchLightningPruningCallback`` (which raises
``optuna.TrialPruned`` when the pruner says so) and returns the metric of the last validation.

* ``detectnet_v2``: phase 1 of :mod:`visionops.pipeline.detectnet` (same datasets, targets, module, schedule)
  on ``data/kitti/{train,val}``; the model is not saved: a trial only measures a configuration.
* ``sparse4d``: :mod:`visionops.pipeline.sparse4d`'s loaders and anchors and
  :func:`visionops.training.sparse4d_fit.fit_sparse4d`; its per-epoch checkpoint goes to a temporary folder.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from visionops.config import Params


def _logger(run_id: str):
    import mlflow  # noqa: PLC0415
    from lightning.pytorch.loggers import MLFlowLogger  # noqa: PLC0415

    return MLFlowLogger(tracking_uri=mlflow.get_tracking_uri(), run_id=run_id)


def _pruning_callback(trial: optuna.Trial, metric: str):
    """optuna-integration's callback, except that the validation after the last epoch is only reported: pruning
    a trial that has already spent its whole budget saves nothing and would record a finished configuration as
    PRUNED instead of COMPLETE (measured: 3 of the first 5 trials of a default Sparse4D sweep)."""
    from optuna_integration import PyTorchLightningPruningCallback  # noqa: PLC0415

    class PruneBeforeLastEpoch(PyTorchLightningPruningCallback):
        def on_validation_end(self, trainer, pl_module) -> None:
            if trainer.sanity_checking or trainer.current_epoch < trainer.max_epochs - 1:
                super().on_validation_end(trainer, pl_module)
                return
            score = trainer.callback_metrics.get(self.monitor)
            if score is not None and pl_module.current_epoch not in self._trial.storage.get_trial(
                    self._trial._trial_id).intermediate_values:
                self._trial.report(score.item(), step=pl_module.current_epoch)

    return PruneBeforeLastEpoch(trial, monitor=metric)


def _final(value: Any, metric: str) -> float:
    if value is None:
        raise RuntimeError(f"the trial never logged {metric!r}: no validation ran (check the validate_every budget)")
    value = float(value)
    if not math.isfinite(value):
        # FloatingPointError: the sweep records the trial as FAIL and goes on (a diverged configuration)
        raise FloatingPointError(f"{metric} is {value} at the end of the trial")
    return value


def detectnet_v2(params: Params, root: Path, trial: optuna.Trial, metric: str, run_id: str) -> float:
    """Phase-1 DetectNet_v2 on ``root/data/kitti`` with ``params``; returns ``metric`` of the last validation."""
    import lightning as L  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from torch.utils.data import DataLoader  # noqa: PLC0415

    from visionops.data.kitti_dataset import collate  # noqa: PLC0415
    from visionops.pipeline import detectnet  # noqa: PLC0415
    from visionops.training.callbacks import SetEpoch  # noqa: PLC0415
    from visionops.training.detectnet_module import DetectNetModule  # noqa: PLC0415
    from visionops.training.precision import resolve_precision  # noqa: PLC0415

    net = params.detectnet_v2
    optim = net.train
    L.seed_everything(net.seed, workers=True)
    train_set, val_set = detectnet.datasets(net, root / detectnet.KITTI)

    def loader(dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=optim.batch_size, shuffle=shuffle, num_workers=net.workers,
                          collate_fn=collate, generator=torch.Generator().manual_seed(net.seed),
                          persistent_workers=net.workers > 0)

    train_loader, val_loader = loader(train_set, True), loader(val_set, False)
    model = None
    if net.pretrained:
        from visionops.models.backbones.pretrained import load_pretrained  # noqa: PLC0415
        from visionops.models.detectnet_v2.model import DetectNetV2  # noqa: PLC0415

        model = DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections)
        load_pretrained(model.backbone, net.pretrained)
    module = DetectNetModule(detectnet.train_config(net, optim), total_steps=optim.epochs * len(train_loader),
                             model=model)
    trainer = L.Trainer(
        max_epochs=optim.epochs, logger=_logger(run_id), enable_checkpointing=False, deterministic=True,
        check_val_every_n_epoch=optim.validate_every, num_sanity_val_steps=0, log_every_n_steps=10,
        callbacks=[SetEpoch(), _pruning_callback(trial, metric)], enable_model_summary=False,
        enable_progress_bar=False, precision=resolve_precision(net.precision),
    )
    trainer.fit(module, train_loader, val_loader)
    return _final(trainer.callback_metrics.get(metric), metric)


def sparse4d(params: Params, root: Path, trial: optuna.Trial, metric: str, run_id: str) -> float:
    """Sparse4D on ``root/data/{ovpkl,frames,anchors}`` with ``params``; returns ``metric`` of the last validation."""
    import lightning as L  # noqa: PLC0415

    from visionops.pipeline import sparse4d as stage  # noqa: PLC0415
    from visionops.training.callbacks import SetEpoch  # noqa: PLC0415
    from visionops.training.sparse4d_fit import fit_sparse4d, module_from_params  # noqa: PLC0415

    cfg = params.sparse4d
    L.seed_everything(cfg.train.seed, workers=True)
    train_loader, val_loader = stage.loaders(params, root)
    if val_loader is None:
        raise FileNotFoundError(f"no OVPKL files under {root / stage.OVPKL / 'val'}: a Sparse4D sweep scores trials "
                                "on the val split; convert a val split first (convert.splits)")
    anchors = stage.load_anchors(root, cfg.num_anchor)
    module = module_from_params(cfg, anchors=anchors, meta={"classes": list(cfg.classes),
                                                            "input_size": list(cfg.architecture().input_size)})
    if cfg.pretrained:
        stage.load_backbone(module.model.backbone, root / cfg.pretrained, echo=lambda _: None)
    with tempfile.TemporaryDirectory(prefix="visionops-trial-") as tmp:
        metrics = fit_sparse4d(module, train_loader, val_loader, Path(tmp) / "trial.ckpt", train=cfg.train,
                               logger=_logger(run_id), callbacks=[SetEpoch(), _pruning_callback(trial, metric)],
                               enable_progress_bar=False)
    return _final(metrics.get(metric), metric)


OBJECTIVES: dict[str, Callable[..., float]] = {"detectnet_v2": detectnet_v2, "sparse4d": sparse4d}
"""model -> objective(params, root, trial, metric, run_id) -> value."""
