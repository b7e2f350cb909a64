"""Sparse4D training glue, so the DVC stage stays thin: module from params, trainer, fit with a NaN guard that
keeps the last good checkpoint, the per-epoch MLflow preview image, and checkpoint loading (``weights_only``).

Typical stage body (inside ``tracking.stage_run``)::

    module = module_from_params(params.sparse4d, anchors=load_anchors(path))
    metrics = fit_sparse4d(module, train_loader, val_loader, "models/sparse4d/model.ckpt",
                           train=params.sparse4d.train, logger=MLFlowLogger(tracking_uri=..., run_id=run.info.run_id))
    model, meta = load_sparse4d_checkpoint("models/sparse4d/model.ckpt")   # later stages

The training DataLoader must not be re-sampled by Lightning (``use_distributed_sampler=False``): the sequence
sampler keeps each batch slot on its own sequence and must shard streams over ranks itself, giving every rank
the same number of steps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch

from visionops.data.sparse4d_dataset import IMAGENET_MEAN, IMAGENET_STD
from visionops.models.sparse4d.criterion import NonFiniteLossError
from visionops.models.sparse4d.model import Sparse4D
from visionops.training.callbacks import atomic_save_checkpoint
from visionops.training.sparse4d_module import Sparse4DModule, config_from_dict

if TYPE_CHECKING:  # pragma: no cover
    from visionops.config import Sparse4DParams, Sparse4DTrainParams

BEV_HANDLING = {
    "frame": "bev_group",
    "note": "boxes and projection matrices are in the BEV-group frame: world minus meta.bev_origin "
            "(translation only, OVPKL recentering); add bev_origin back for world coordinates",
}
"""How boxes relate to the world: stored in every checkpoint for the inference side."""


def module_from_params(params: Sparse4DParams, anchors: Any = None, total_steps: int | None = None,
                       meta: dict[str, Any] | None = None) -> Sparse4DModule:
    """A :class:`Sparse4DModule` for the ``sparse4d`` params section (anchors (num_anchor, 11) or None)."""
    train = params.train
    info = {"preset": params.preset, "bev": dict(BEV_HANDLING), **(meta or {})}
    return Sparse4DModule(params.architecture(), lr=train.lr, backbone_lr_mult=train.backbone_lr_mult,
                          weight_decay=train.weight_decay, warmup_steps=train.warmup_steps, total_steps=total_steps,
                          eval_threshold=params.infer.tracking_threshold, anchors=anchors, meta=info, seed=train.seed)


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """Lightning precision of a Sparse4D run (DFA, softmax and losses stay fp32 inside the model either way).

    ``auto`` is bf16 autocast on CUDA and fp32 on a CPU: bf16 on this project's CPU is ~1.4x faster per step, but
    what it does to the small CPU model's accuracy is unmeasured, so the default keeps fp32 there. An explicit
    ``32-true`` or ``bf16-mixed`` is honoured anywhere; ``16-mixed`` (fp16 with a loss scaler) needs CUDA.
    """
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if precision == "auto":
        return "bf16-mixed" if cuda else "32-true"
    if precision == "16-mixed" and not cuda:
        raise ValueError("sparse4d.train.precision: 16-mixed (fp16 autocast with a loss scaler) needs a CUDA GPU; "
                         "on a CPU set bf16-mixed or 32-true (or auto)")
    return precision


def save_checkpoint_atomic(trainer: L.Trainer, path: str | os.PathLike) -> Path:
    """All ranks join ``save_checkpoint`` (it is collective); rank 0 writes to a temp file and renames."""
    if trainer.is_global_zero:
        return atomic_save_checkpoint(trainer, path)
    trainer.save_checkpoint(path, weights_only=False)  # writes nothing off rank 0
    return Path(path)


class LastGoodCheckpoint(L.Callback):
    """Save the checkpoint atomically after every training epoch. A step only completes with finite losses and
    gradients (the module raises otherwise), so the file always holds the last good model."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path, self.saved_step = Path(path), None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        save_checkpoint_atomic(trainer, self.path)
        self.saved_step = trainer.global_step


class ValidationPreview(L.Callback):
    """Log the module's preview frame (predictions vs GT in every camera) to the active MLflow run."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import mlflow  # noqa: PLC0415

        preview = getattr(pl_module, "preview", None)
        if preview is None or trainer.sanity_checking or not trainer.is_global_zero or mlflow.active_run() is None:
            return
        import matplotlib.pyplot as plt  # noqa: PLC0415

        fig = draw_preview(preview, pl_module.cfg.class_names)
        mlflow.log_figure(fig, f"val_frames/epoch_{trainer.current_epoch:03d}.png")
        plt.close(fig)


def _project_edges(boxes: np.ndarray, projection: np.ndarray) -> list[np.ndarray]:
    """(M, >=7) decoded boxes -> per box the (E, 2, 2) pixel segments of its edges in front of the camera."""
    from visionops.data.box_projection import BOX_EDGES  # noqa: PLC0415
    from visionops.data.schema import box_corners  # noqa: PLC0415

    segments = []
    for box in boxes:
        corners = box_corners(box[:3], box[3:6], np.array([0.0, 0.0, box[6]]))
        pix = np.concatenate([corners, np.ones((8, 1))], axis=1) @ projection.T
        depth = pix[:, 2]
        uv = pix[:, :2] / np.maximum(depth[:, None], 1e-5)
        front = (depth[BOX_EDGES[:, 0]] > 0.05) & (depth[BOX_EDGES[:, 1]] > 0.05)
        segments.append(np.stack([uv[BOX_EDGES[front, 0]], uv[BOX_EDGES[front, 1]]], axis=1))
    return segments


def draw_preview(preview: dict[str, Any], class_names: Sequence[str]):
    """A small matplotlib figure: one panel per camera, GT boxes white dashed, predictions in class colours."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    images = preview["images"].numpy()  # (K, 3, H, W) normalised
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    cams, (h, w) = len(images), images.shape[-2:]
    fig, axes = plt.subplots(1, cams, figsize=(3.2 * cams, 3.2 * h / w + 0.4), dpi=80, squeeze=False)
    colours = plt.get_cmap("tab10")
    for k, ax in enumerate(axes[0]):
        ax.imshow(np.clip((images[k] * std + mean).transpose(1, 2, 0), 0, 1))
        projection = preview["projection_mat"][k].double().numpy()
        for boxes, labels, gt in ((preview["gt"], preview["gt_labels"], True),
                                  (preview["pred"], preview["pred_labels"], False)):
            for seg, label in zip(_project_edges(boxes.double().numpy(), projection), labels.tolist(), strict=True):
                for (u0, v0), (u1, v1) in seg:
                    ax.plot([u0, u1], [v0, v1], color="white" if gt else colours(label % 10),
                            linestyle="--" if gt else "-", linewidth=0.8)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_axis_off()
        ax.set_title(f"camera {k}", fontsize=7)
    names = ", ".join(f"{i}={n}" for i, n in enumerate(class_names))
    fig.suptitle(f"{preview.get('title', '')}: GT white dashed, predictions coloured ({names})", fontsize=7)
    fig.tight_layout()
    return fig


def build_trainer(out_ckpt: str | os.PathLike, *, epochs: int, steps_per_epoch: int | None = None,
                  grad_clip: float = 25.0, precision: str = "auto", validate_every: int = 1, logger: Any = False,
                  accelerator: str = "auto", devices: int | str = "auto", strategy: str = "auto",
                  callbacks: Sequence[L.Callback] = (), log_every_n_steps: int = 10,
                  enable_progress_bar: bool = False) -> L.Trainer:
    """The Lightning trainer of a Sparse4D run (``out_ckpt`` receives the last good checkpoint every epoch)."""
    use_gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    multi = devices not in ("auto", 1, "1")
    return L.Trainer(
        max_epochs=epochs, limit_train_batches=steps_per_epoch or 1.0, accelerator=accelerator, devices=devices,
        strategy=strategy, precision=resolve_precision(precision, accelerator), logger=logger,
        gradient_clip_val=grad_clip or None, gradient_clip_algorithm="norm",
        check_val_every_n_epoch=validate_every, num_sanity_val_steps=0, log_every_n_steps=log_every_n_steps,
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=enable_progress_bar,
        use_distributed_sampler=False,  # the sequence sampler shards streams per rank itself
        sync_batchnorm=use_gpu and multi,  # TAO trains with SyncBN
        callbacks=[LastGoodCheckpoint(out_ckpt), ValidationPreview(), *callbacks],
    )


def fit_sparse4d(module: Sparse4DModule, train_loader: Any, val_loader: Any, out_ckpt: str | os.PathLike, *,
                 train: Sparse4DTrainParams | None = None, trainer: L.Trainer | None = None,
                 resume_from: str | os.PathLike | None = None, **trainer_kwargs: Any) -> dict[str, float]:
    """Train, validate, write ``out_ckpt`` atomically; returns the last validation metrics.

    ``resume_from``: a checkpoint of an earlier run of the same configuration (e.g. the last good one an
    interrupted run left in ``out_ckpt``): weights, optimizer, schedule, epoch and step continue from it. It is
    read with ``weights_only=True``.

    Trainer settings come from ``train`` (epochs, steps_per_epoch, grad_clip, precision, validate_every) and
    ``trainer_kwargs`` (see :func:`build_trainer`), or pass a ready ``trainer``.

    Raises:
        NonFiniteLossError: a loss term or the gradient norm became NaN/inf; the message names the term, the
            decoder layer and the step, and ``out_ckpt`` keeps the checkpoint of the last completed epoch.
    """
    if trainer is None:
        if train is not None:
            trainer_kwargs = {"epochs": train.epochs, "steps_per_epoch": train.steps_per_epoch,
                              "grad_clip": train.grad_clip, "precision": train.precision,
                              "validate_every": train.validate_every, **trainer_kwargs}
        trainer = build_trainer(out_ckpt, **trainer_kwargs)
    guard = next((c for c in trainer.callbacks if isinstance(c, LastGoodCheckpoint)), None)
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)
    except NonFiniteLossError as err:
        saved = None if guard is None else guard.saved_step
        kept = f"the last good checkpoint {out_ckpt} (step {saved}) is kept" if saved is not None \
            else "no checkpoint was written"
        err.args = (f"{err.args[0]}; training stopped, {kept}",)
        raise
    if val_loader is not None and trainer.current_epoch % trainer.check_val_every_n_epoch:
        trainer.validate(module, val_loader, verbose=False)  # the last epoch was not validated
    save_checkpoint_atomic(trainer, out_ckpt)
    return dict(module.last_metrics)


def load_sparse4d_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                             ) -> tuple[Sparse4D, dict[str, Any]]:
    """Sparse4D (eval mode) from a Lightning checkpoint, read with ``torch.load(weights_only=True)`` only.

    Returns:
        ``(model, meta)``; meta = ``classes``, ``input_size`` [W, H], ``preset``, ``bev`` (see
        :data:`BEV_HANDLING`), anything passed as ``meta`` at training time, ``config`` (the Sparse4DConfig as a
        plain dict), ``epoch`` and ``global_step``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Sparse4D checkpoint not found; run the train_sparse4d stage first")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    hparams = checkpoint.get("hyper_parameters") or {}
    if "model" not in hparams:
        raise ValueError(f"{path}: not a Sparse4D training checkpoint (no hyper_parameters.model)")
    model = Sparse4D(config_from_dict(hparams["model"]))
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    meta = {**hparams.get("meta", {}), "config": hparams["model"], "epoch": checkpoint.get("epoch"),
            "global_step": checkpoint.get("global_step")}
    return model.eval(), meta
