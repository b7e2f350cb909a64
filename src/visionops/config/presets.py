"""Named parameter presets: one command switches the pipeline between the CPU default and a full-size recipe.

A preset is a set of dotted ``key: value`` overrides of ``params.yaml`` (the same keys ``dvc exp run -S``
takes). :func:`apply_preset` writes them into the params file in place, keeping its comments and key order
(ruamel round-trip), after validating the result against the schema, and atomically. Because dvc.yaml names
params by key, only the stages whose keys change re-run.

``visionops params preset --list`` shows them; ``visionops params preset dashcamnet`` applies one;
``dvc exp run -S ...`` with :func:`preset_overrides` runs one as an experiment without touching the file.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionops.config.base import DEFAULT_PARAMS_FILE, ConfigError


@dataclass(frozen=True)
class Preset:
    """A named set of overrides with a one-line description (shown by ``--list``)."""

    description: str
    values: dict[str, Any] = field(default_factory=dict)


_WAREHOUSE_CLASSES = ["person", "forklift", "novacarter", "transporter", "fouriergr1t2", "agilitydigit"]

PRESETS: dict[str, Preset] = {
    # TAO's DetectNet_v2 spec as DashCamNet was trained (specs/detectnet_v2_and_pruning.md): ResNet-18 at
    # 960x544, foreground coverage weight 0.05, 120 epochs, LR 5e-6..5e-4, batch 8. Needs a GPU (and, to
    # match the card, ImageNet weights in detectnet_v2.pretrained plus KITTI data with its four classes).
    "dashcamnet": Preset(
        "DetectNet_v2 as the DashCamNet card: ResNet-18, 960x544 (60x34 grid), car/bicycle/person/road_sign, "
        "TAO's loss weights and 120-epoch schedule (GPU)",
        {
            "detectnet_v2.arch": "resnet18",
            "detectnet_v2.input_size": [960, 544],
            "detectnet_v2.classes": ["car", "bicycle", "person", "road_sign"],
            "detectnet_v2.coverage_foreground_weight": 0.05,
            "detectnet_v2.targets.per_class_cov_radius": {"person": 1.0},
            "detectnet_v2.train.epochs": 120,
            "detectnet_v2.train.batch_size": 8,
            "detectnet_v2.train.max_lr": 5.0e-4,
            "detectnet_v2.train.validate_every": 10,
            "detectnet_v2.retrain.epochs": 120,
            "detectnet_v2.retrain.batch_size": 8,
            "detectnet_v2.retrain.max_lr": 5.0e-4,
            "detectnet_v2.retrain.validate_every": 10,
            # TAO's KITTI-spec augmentation and prune threshold: with ImageNet weights and 120 epochs of L1 the
            # filter norms spread out, so the default -pth works (the CPU default's 0.87 would cut far too much).
            "detectnet_v2.augment.zoom_min": 1.0,
            "detectnet_v2.augment.zoom_max": 1.0,
            "detectnet_v2.augment.translate_max": 8.0,
            "prune.threshold": 0.1,
            "convert.kitti.frame_step": 1,
            "convert.kitti.val_frame_step": 1,
        },
    ),
    # DetectNet_v2 on the real 2025 warehouse data at full resolution: the warehouse classes, TAO's schedule.
    "warehouse_gpu": Preset(
        "DetectNet_v2 on the six warehouse classes at 960x544, TAO's 120-epoch schedule (GPU)",
        {
            "detectnet_v2.input_size": [960, 544],
            "detectnet_v2.classes": _WAREHOUSE_CLASSES,
            "detectnet_v2.coverage_foreground_weight": 0.05,
            "detectnet_v2.train.epochs": 120,
            "detectnet_v2.train.max_lr": 5.0e-4,
            "detectnet_v2.retrain.max_lr": 5.0e-4,
            "detectnet_v2.train.validate_every": 10,
            "detectnet_v2.retrain.epochs": 120,
            "detectnet_v2.retrain.validate_every": 10,
            # TAO's augmentation and -pth too, like the rest of this preset (check the pruning report: after 120
            # epochs of L1 the filter norms should spread out; the CPU default's 0.87 would cut far too much).
            "detectnet_v2.augment.zoom_min": 1.0,
            "detectnet_v2.augment.zoom_max": 1.0,
            "detectnet_v2.augment.translate_max": 8.0,
            "prune.threshold": 0.1,
            "convert.kitti.frame_step": 1,
            "convert.kitti.val_frame_step": 1,
        },
    ),
    # Sparse4D as the TAO card (specs/sparse4d_architecture.md 2.5): ResNet-101 at 960x540, 900 anchors,
    # 6 decoder layers; TAO's optimiser (AdamW 1e-4, backbone x0.25, 500 warm-up steps, bf16 on GPU) and
    # 5 "epochs" of one pass over every frame of every BEV group.
    "full_r101": Preset(
        "Sparse4D as the TAO card: ResNet-101, 960x540, 900 anchors / 600 temporal, 6 decoder layers, "
        "TAO's optimiser and 5 passes over the data (GPU; pretrained weights in sparse4d.pretrained)",
        {
            "sparse4d.preset": "full_r101",
            "sparse4d.pretrained": None,  # the CPU default's DetectNet_v2 ResNet-18 does not fit a ResNet-101
            "sparse4d.num_anchor": 900,
            "sparse4d.input_size": None,
            "sparse4d.train.lr": 1.0e-4,
            "sparse4d.train.backbone_lr_mult": 0.25,
            "sparse4d.train.warmup_steps": 500,
            "sparse4d.train.batch_size": 2,
            "sparse4d.train.epochs": 5,
            "sparse4d.train.steps_per_epoch": None,
            "sparse4d.train.precision": "auto",
            "convert.bev_groups.max_cameras": 12,
        },
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


def preset_overrides(name: str) -> list[str]:
    """The preset as ``key=value`` strings for ``visionops -S`` / ``dvc exp run -S`` (values as flow YAML)."""
    import yaml  # noqa: PLC0415

    return [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, value in get_preset(name).values.items()]


def apply_preset(name: str, path: str | os.PathLike = DEFAULT_PARAMS_FILE) -> dict[str, tuple[Any, Any]]:
    """Write preset ``name`` into the params file; returns ``{key: (old, new)}`` for the keys that changed.

    The file keeps its comments and order; the result is validated before anything is written, so a preset
    that does not fit the schema (or a broken params file) leaves the file untouched.
    """
    from ruamel.yaml import YAML  # noqa: PLC0415

    from visionops import atomic  # noqa: PLC0415
    from visionops.config import apply_overrides, read_params_file, validate_params  # noqa: PLC0415

    preset = get_preset(name)
    path = Path(path)
    validate_params(apply_overrides(read_params_file(path), preset_overrides(name)), f"{path} + preset {name}")
    yaml = YAML()  # round-trip: comments and key order survive
    yaml.width = 120
    document = yaml.load(path.read_text(encoding="utf-8"))
    changes: dict[str, tuple[Any, Any]] = {}
    for dotted, value in preset.values.items():
        node = document
        *parents, leaf = dotted.split(".")
        for part in parents:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        old = node.get(leaf)
        if _plain(old) != value:
            changes[dotted] = (_plain(old), value)
            node[leaf] = value
    if changes:
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        atomic.write_text(path, buffer.getvalue())
    return changes


def _plain(value: Any) -> Any:
    """ruamel's commented containers -> plain lists/dicts, for comparison and reporting."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
