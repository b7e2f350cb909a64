"""Params of the sweep tests' micro runs (a module of its own: `from conftest import ...` resolves to whichever
conftest pytest imported first when several test folders run together)."""

from __future__ import annotations

from visionops.config import Params


def detectnet_params(sweep: dict | None = None, **top) -> Params:
    """DetectNet_v2 at 128x96 on the toy KITTI set (2 classes), a 2-epoch budget, pruning from epoch 0."""
    section = {"budget": {"detectnet_v2.train.epochs": 2, "detectnet_v2.train.validate_every": 1},
               "startup_trials": 2, "pruner_startup_trials": 1, "min_epochs": 0, **(sweep or {})}
    return Params.model_validate({
        "detectnet_v2": {"input_size": [128, 96], "classes": ["person", "forklift"], "workers": 0,
                         "targets": {"per_class_cov_radius": {"person": 1.0}}, "train": {"batch_size": 2}},
        "sweep": {"detectnet_v2": section, **top}})


def sparse4d_params(sweep: dict | None = None, **top) -> Params:
    """The default Sparse4D preset at 128x64 with 8 anchors, one stream, 2 epochs x 3 steps per trial, from scratch
    (the micro sweep data has no DetectNet_v2 checkpoint to start the backbone from)."""
    section = {"budget": {"sparse4d.train.epochs": 2, "sparse4d.train.steps_per_epoch": 3,
                          "sparse4d.train.validate_every": 1},
               "startup_trials": 2, "pruner_startup_trials": 1, "min_epochs": 0, **(sweep or {})}
    return Params.model_validate({
        "sparse4d": {"num_anchor": 8, "input_size": [128, 64], "classes": ["Person"], "pretrained": None,
                     "train": {"batch_size": 1, "workers": 0, "sequence_length": 3, "warmup_steps": 1}},
        "sweep": {"sparse4d": section, **top}})
