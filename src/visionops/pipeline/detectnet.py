"""DetectNet_v2 stages: ``train_detectnet`` (phase 1), ``prune``, ``retrain`` (phase 2); ``evaluate_detectnet`` is in
:mod:`visionops.pipeline.detectnet_evaluate` (so that changing how models are scored does not stale their training).

Files (paths relative to the repository root)::

    models/detectnet_v2/phase1.ckpt      Lightning checkpoint of phase 1 (L1-regularised)
    models/detectnet_v2/pruned.pt        pruning history + state dict (rebuilt on load, weights_only=True)
    reports/prune/detectnet_v2.{json,md} parameters / MACs before and after, kept channels per layer
    models/detectnet_v2/retrained.ckpt   Lightning checkpoint of phase 2 (+ the pruning history)

Every stage is an MLflow run in the ``detectnet_v2`` experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionops.config import DetectNetOptimParams, DetectNetParams, Params

MODEL_DIR = Path("models/detectnet_v2")
PHASE1 = MODEL_DIR / "phase1.ckpt"
PRUNED = MODEL_DIR / "pruned.pt"
RETRAINED = MODEL_DIR / "retrained.ckpt"
PRUNE_REPORT = Path("reports/prune/detectnet_v2")
KITTI = Path("data/kitti")


# --------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------


def train_config(net: DetectNetParams, optim: DetectNetOptimParams):
    from visionops.models.detectnet_v2.postprocess import ClusteringConfig  # noqa: PLC0415
    from visionops.training.detectnet_module import DetectNetTrainConfig  # noqa: PLC0415

    return DetectNetTrainConfig(
        class_names=list(net.classes), input_size=tuple(net.input_size), arch=net.arch,
        all_projections=net.all_projections, min_lr=optim.min_lr, max_lr=optim.max_lr, soft_start=optim.soft_start,
        annealing=optim.annealing, l1_weight=optim.l1_weight, coverage_foreground_weight=net.coverage_foreground_weight,
        class_weights=net.class_weights, objective_weights=tuple(net.objective_weights),
        clustering=ClusteringConfig(**net.postprocess.model_dump()), iou_threshold=net.iou_threshold,
        score_threshold=net.score_threshold, eval_min_height=net.evaluation_box.min_height,
        eval_min_width=net.evaluation_box.min_width,
    )


def target_encoder(net: DetectNetParams):
    from visionops.models.detectnet_v2.target_encoding import ClassTargetConfig, GridboxTargetEncoder  # noqa: PLC0415

    targets = net.targets
    configs = []
    for name in net.classes:
        radius = targets.per_class_cov_radius.get(name, targets.cov_radius)
        configs.append(ClassTargetConfig(cov_radius_x=radius, cov_radius_y=radius,
                                         bbox_min_radius=targets.bbox_min_radius))
    return GridboxTargetEncoder(len(net.classes), image_size=tuple(net.input_size), class_configs=configs,
                                deadzone_radius=targets.deadzone_radius)


def datasets(net: DetectNetParams, kitti_dir: Path):
    """(train dataset with augmentation and targets, val dataset without augmentation)."""
    from visionops.data.augment import AugmentConfig  # noqa: PLC0415
    from visionops.data.kitti_dataset import KittiDetectionDataset  # noqa: PLC0415

    aug = net.augment
    augment = AugmentConfig(hflip_probability=aug.hflip_probability, zoom_min=aug.zoom_min, zoom_max=aug.zoom_max,
                            translate_max_x=aug.translate_max, translate_max_y=aug.translate_max,
                            hue_rotation_max=aug.hue_rotation_max, saturation_shift_max=aug.saturation_shift_max,
                            contrast_scale_max=aug.contrast_scale_max, brightness_scale_max=aug.brightness_scale_max)
    encoder = target_encoder(net)
    train = KittiDetectionDataset(kitti_dir / "train", net.classes, tuple(net.input_size), augment=augment,
                                  encoder=encoder.encode, seed=net.seed)
    val = KittiDetectionDataset(kitti_dir / "val", net.classes, tuple(net.input_size), encoder=encoder.encode)
    return train, val


def _loader(dataset, batch_size: int, workers: int, shuffle: bool, seed: int):
    import torch  # noqa: PLC0415
    from torch.utils.data import DataLoader  # noqa: PLC0415

    from visionops.data.kitti_dataset import collate  # noqa: PLC0415

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, collate_fn=collate,
                      generator=generator, persistent_workers=workers > 0, drop_last=False)


def load_checkpoint_model(path: Path, net: DetectNetParams):
    """DetectNetV2 from a Lightning checkpoint (``weights_only=True``), replaying a pruning history if it has one."""
    import torch  # noqa: PLC0415

    from visionops.models.detectnet_v2.model import DetectNetV2  # noqa: PLC0415
    from visionops.pruning import apply_pruning_history  # noqa: PLC0415

    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; run `visionops detectnet train` (phase 1) or "
                                "`visionops detectnet retrain` first")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections)
    history = checkpoint.get("pruning_history")
    if history:
        width, height = net.input_size
        apply_pruning_history(model, history, torch.zeros(1, 3, height, width))
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval(), history or []


# --------------------------------------------------------------------------------------------------
# training (phase 1 and phase 2)
# --------------------------------------------------------------------------------------------------


def fit(params: Params, *, phase: str, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """Train phase 1 (``train``) or phase 2 (``retrain``, from the pruned model); returns the final KPIs."""
    import lightning as L  # noqa: PLC0415
    import mlflow  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415
    from visionops.training.callbacks import MlflowSamples, SetEpoch, atomic_save_checkpoint  # noqa: PLC0415
    from visionops.training.detectnet_module import DetectNetModule  # noqa: PLC0415
    from visionops.training.precision import resolve_precision  # noqa: PLC0415

    net = params.detectnet_v2
    optim = net.train if phase == "train" else net.retrain
    out = root / (PHASE1 if phase == "train" else RETRAINED)
    stage = "train_detectnet" if phase == "train" else "retrain"
    L.seed_everything(net.seed, workers=True)
    with tracking.stage_run(stage, "detectnet_v2", net, params_prefix="detectnet_v2.",
                            experiment_prefix=params.tracking.experiment_prefix,
                            log_system_metrics=params.tracking.log_system_metrics, pipeline_params=params) as run:
        train_set, val_set = datasets(net, root / KITTI)
        mlflow.log_dict(train_set.label_report(), "labels_train.json")
        train_loader = _loader(train_set, optim.batch_size, net.workers, True, net.seed)
        val_loader = _loader(val_set, optim.batch_size, net.workers, False, net.seed)
        total_steps = optim.epochs * len(train_loader)
        model, history = None, []
        if phase == "retrain":
            from visionops.models.detectnet_v2.model import DetectNetV2  # noqa: PLC0415
            from visionops.pruning import load_pruned  # noqa: PLC0415

            width, height = net.input_size
            def build() -> DetectNetV2:
                return DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections)

            model, checkpoint = load_pruned(root / PRUNED, build, torch.zeros(1, 3, height, width))
            history = checkpoint["pruning_history"]
        elif net.pretrained:
            model = _pretrained_model(net, echo)
        module = DetectNetModule(train_config(net, optim), total_steps=total_steps, model=model)
        module.pruning_history = history
        logger = L.pytorch.loggers.MLFlowLogger(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id)
        precision = resolve_precision(net.precision)
        mlflow.set_tag("precision", precision)
        trainer = L.Trainer(
            max_epochs=optim.epochs, logger=logger, enable_checkpointing=False, deterministic=True,
            check_val_every_n_epoch=optim.validate_every, num_sanity_val_steps=0, log_every_n_steps=10,
            callbacks=[SetEpoch(), MlflowSamples(val_set, count=2)], enable_model_summary=False,
            precision=precision,
        )
        trainer.fit(module, train_loader, val_loader)
        trainer.validate(module, val_loader, verbose=False)
        atomic_save_checkpoint(trainer, out)
        kpis = module.last_kpis or {}
        mlflow.log_artifact(str(out), artifact_path="checkpoints")
        params_count = sum(p.numel() for p in module.model.parameters())
        mlflow.log_metrics({"params": params_count, "final/mAP": kpis.get("mAP_integrated") or 0.0})
        echo(f"[{stage}] {optim.epochs} epochs, {params_count:,} parameters, val mAP "
             f"{kpis.get('mAP_integrated') or 0.0:.3f} -> {out}")
    return kpis


def _pretrained_model(net: DetectNetParams, echo):
    from visionops.models.backbones.pretrained import load_pretrained  # noqa: PLC0415
    from visionops.models.detectnet_v2.model import DetectNetV2  # noqa: PLC0415

    model = DetectNetV2(len(net.classes), arch=net.arch, all_projections=net.all_projections)
    report = load_pretrained(model.backbone, net.pretrained)
    echo(f"[train_detectnet] ImageNet weights: {len(report['loaded'])} tensors loaded, "
         f"{len(report['missing'])} left initialised (TAO's extra projections)")
    return model


# --------------------------------------------------------------------------------------------------
# prune
# --------------------------------------------------------------------------------------------------


def prune(params: Params, *, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """Prune the phase-1 model with TAO's semantics; writes ``pruned.pt`` and the report."""
    import mlflow  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from visionops import atomic, tracking  # noqa: PLC0415
    from visionops.pruning import PruneConfig, prune_model, save_pruned  # noqa: PLC0415

    net = params.detectnet_v2
    with tracking.stage_run("prune", "detectnet_v2", params.prune, params_prefix="prune.",
                            experiment_prefix=params.tracking.experiment_prefix, pipeline_params=params):
        model, _ = load_checkpoint_model(root / PHASE1, net)
        width, height = net.input_size
        example = torch.zeros(1, 3, height, width)
        config = PruneConfig(**params.prune.model_dump())
        report = prune_model(model, example, config, output_layers=list(model.head_names))
        save_pruned(root / PRUNED, model, report.pruning_history, {"classes": list(net.classes)})
        base = root / PRUNE_REPORT
        base.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(base.with_suffix(".json"), report.to_json())
        atomic.write_text(base.with_suffix(".md"), report.to_markdown())
        mlflow.log_metrics({"params_before": report.params_before, "params_after": report.params_after,
                            "macs_before": report.macs_before, "macs_after": report.macs_after,
                            "params_ratio": report.ratio})
        mlflow.log_artifact(str(base.with_suffix(".md")))
        echo(f"[prune] parameters {report.params_before:,} -> {report.params_after:,} "
             f"({1 / report.ratio:.2f}x fewer), MACs {report.macs_before / 1e9:.2f}G -> {report.macs_after / 1e9:.2f}G")
    return report.to_dict()
