"""Sparse4D training stage (``train_sparse4d``): OVPKL + HDF5 frames + k-means anchors -> model.ckpt.

Every training step feeds one frame per stream (``sparse4d.train.batch_size`` streams), each stream
playing its own sequence so the instance bank carries state across steps; validation streams every val
sequence from its start. The checkpoint (``models/sparse4d/model.ckpt``) is a Lightning checkpoint that
loads with ``weights_only=True`` (:func:`visionops.training.sparse4d_fit.load_sparse4d_checkpoint`); the
``track_sparse4d`` stage (:mod:`visionops.pipeline.sparse4d_tracks`) runs it on the val scenes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionops.config import Params

MODEL = Path("models/sparse4d/model.ckpt")
OVPKL = Path("data/ovpkl")
ANCHORS = Path("data/anchors")


def ovpkl_files(root: Path, split: str) -> list[Path]:
    """The OVPKL group files of a split, sorted; a clear error when convert has not written any."""
    files = sorted((root / OVPKL / split).glob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"no OVPKL files under {root / OVPKL / split}: run the convert stage first "
                                f"(convert.splits must include {split})")
    return files


def load_anchors(root: Path, num_anchor: int):
    """(num_anchor, 11) float32 k-means anchors written by convert (plain .npy, no pickle)."""
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    path = root / ANCHORS / f"kmeans{num_anchor}.npy"
    if not path.is_file():
        found = sorted(p.name for p in (root / ANCHORS).glob("kmeans*.npy"))
        raise FileNotFoundError(f"{path} not found (have: {found or 'none'}): convert writes kmeans<N>.npy for "
                                "N = sparse4d.num_anchor; re-run `dvc repro convert` after changing it")
    anchors = np.load(path, allow_pickle=False)
    if anchors.shape != (num_anchor, 11) or not np.isfinite(anchors).all():
        raise ValueError(f"{path}: expected finite anchors of shape ({num_anchor}, 11), got {anchors.shape}")
    return torch.from_numpy(anchors.astype(np.float32))


def loaders(params: Params, root: Path):
    """(train loader, val loader or None) over the converted data, with the temporal sequence sampler."""
    from torch.utils.data import DataLoader  # noqa: PLC0415

    from visionops.data.sequence_sampler import SequenceBatchSampler  # noqa: PLC0415
    from visionops.data.sparse4d_augment import Sparse4DAugment  # noqa: PLC0415
    from visionops.data.sparse4d_dataset import Sparse4DDataset, collate_sparse4d  # noqa: PLC0415

    cfg = params.sparse4d
    arch = cfg.architecture()
    size = tuple(arch.input_size)
    train = cfg.train
    train_set = Sparse4DDataset(ovpkl_files(root, "train"), root, cfg.classes, size,
                                augment=Sparse4DAugment(**cfg.augment.model_dump()), with_depth=arch.use_depth_head)
    sampler = SequenceBatchSampler(train_set.sequences, train.batch_size, frame_step=train.frame_step,
                                   skip_prob=train.skip_probability, max_sequence_length=train.sequence_length,
                                   steps_per_epoch=train.steps_per_epoch, seed=train.seed)
    common = {"collate_fn": collate_sparse4d, "num_workers": train.workers,
              "persistent_workers": train.workers > 0}
    train_loader = DataLoader(train_set, batch_sampler=sampler, **common)
    val_files = sorted((root / OVPKL / "val").glob("*.pkl"))
    if not val_files:
        return train_loader, None
    val_set = Sparse4DDataset(val_files, root, cfg.classes, size, augment=None, with_depth=False)
    val_sampler = SequenceBatchSampler(val_set.sequences, 1, frame_step=train.frame_step, sequential=True)
    return train_loader, DataLoader(val_set, batch_sampler=val_sampler, **common)


def fit(params: Params, *, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """Train Sparse4D on the converted train split -> ``models/sparse4d/model.ckpt``; returns val metrics."""
    import lightning as L  # noqa: PLC0415
    import mlflow  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415
    from visionops.training.callbacks import SetEpoch  # noqa: PLC0415
    from visionops.training.sparse4d_fit import fit_sparse4d, module_from_params  # noqa: PLC0415

    cfg = params.sparse4d
    L.seed_everything(cfg.train.seed, workers=True)
    with tracking.stage_run("train_sparse4d", "sparse4d", cfg, params_prefix="sparse4d.",
                            experiment_prefix=params.tracking.experiment_prefix,
                            log_system_metrics=params.tracking.log_system_metrics, pipeline_params=params) as run:
        train_loader, val_loader = loaders(params, root)
        anchors = load_anchors(root, cfg.num_anchor)
        module = module_from_params(cfg, anchors=anchors,
                                    meta={"classes": list(cfg.classes),
                                          "input_size": list(cfg.architecture().input_size)})
        logger = L.pytorch.loggers.MLFlowLogger(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id)
        out = root / MODEL
        resume_from = out if cfg.train.resume and out.is_file() else None
        if resume_from is not None:
            echo(f"[train_sparse4d] resuming from {out}")
        metrics = fit_sparse4d(module, train_loader, val_loader, out, train=cfg.train, logger=logger,
                               callbacks=[SetEpoch()], enable_progress_bar=True, resume_from=resume_from)
        mlflow.log_artifact(str(out), artifact_path="checkpoints")
        params_count = sum(p.numel() for p in module.model.parameters())
        mlflow.log_metric("params", params_count)
        tracking.log_headline_metrics({"params": params_count})
        shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()))
        echo(f"[train_sparse4d] {cfg.train.epochs} epochs x {len(train_loader)} steps, {params_count:,} "
             f"parameters; {shown or 'no validation'} -> {out}")
    return metrics
