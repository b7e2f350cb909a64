"""Sparse4D training stage (``train_sparse4d``): OVPKL + HDF5 frames + k-means anchors -> model.ckpt.

Every training step feeds one frame per stream (``sparse4d.train.batch_size`` streams), each stream
playing its own sequence so the instance bank carries state across steps; validation streams every val
sequence from its start. The checkpoint (``models/sparse4d/model.ckpt``) is a Lightning checkpoint that
loads with ``weights_only=True`` (:func:`visionops.training.sparse4d_fit.load_sparse4d_checkpoint`); the
``track_sparse4d`` stage (:mod:`visionops.pipeline.sparse4d_tracks`) runs it on the val scenes.
"""

from __future__ import annotations

import tempfile
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


def load_backbone(backbone, path: Path, echo=print) -> dict[str, Any]:
    """Fill Sparse4D's ResNet from ``sparse4d.pretrained``: torchvision ImageNet weights, or a visionops
    checkpoint such as DetectNet_v2's ``models/detectnet_v2/phase1.ckpt`` (same ResNet code, trained on the same
    warehouse frames). Logs what was loaded to MLflow; returns :func:`load_pretrained`'s report."""
    import mlflow  # noqa: PLC0415

    from visionops.models.backbones.pretrained import load_pretrained  # noqa: PLC0415

    if path.suffix == ".ckpt":  # one of our Lightning checkpoints
        if not path.is_file():  # load_pretrained's hint (torchvision's URLs) would mislead here
            raise FileNotFoundError(
                f"sparse4d.pretrained: {path} not found. It is DetectNet_v2's phase-1 checkpoint by default: run "
                "`dvc repro train_detectnet` first (or `dvc repro`), or set sparse4d.pretrained to a torchvision "
                "ImageNet file or null (from scratch)")
        with tempfile.TemporaryDirectory(prefix="visionops-backbone-") as tmp:
            report = load_pretrained(backbone, _lightning_backbone(path, Path(tmp) / "backbone.pth"))
    else:
        report = load_pretrained(backbone, path)
    counts = {k: len(report[k]) for k in ("loaded", "missing", "unexpected", "shape_mismatch")}
    if mlflow.active_run() is not None:
        mlflow.set_tags({"pretrained": str(path), **{f"pretrained.{k}": str(v) for k, v in counts.items()}})
    # DetectNet_v2's extra 1x1 projections (all_projections) have no place in this ResNet: "unexpected", skipped.
    echo(f"[train_sparse4d] backbone from {path}: {counts['loaded']} tensors loaded, {counts['missing']} left "
         f"initialised, {counts['unexpected']} not used, {counts['shape_mismatch']} of another shape")
    return report


def _lightning_backbone(ckpt: Path, out: Path) -> Path:
    """``out``: the ``backbone.*`` tensors of a visionops Lightning checkpoint (network under ``model.``), which
    :func:`load_pretrained` then checks and loads like any detector checkpoint. Read with weights_only=True."""
    import torch  # noqa: PLC0415

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True).get("state_dict") or {}
    except Exception as e:  # a foreign or truncated file: torch raises UnpicklingError, EOFError, RuntimeError ...
        raise ValueError(f"sparse4d.pretrained: {ckpt} is not a visionops checkpoint ({type(e).__name__}: {e})") from e
    backbone = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.backbone.")}
    if not backbone:
        raise ValueError(f"sparse4d.pretrained: {ckpt} has no model.backbone.* weights (first keys: "
                         f"{list(state)[:5]}); expected a DetectNet_v2 or Sparse4D training checkpoint")
    torch.save(backbone, out)
    return out


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
        if cfg.pretrained:
            load_backbone(module.model.backbone, root / cfg.pretrained, echo)
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
