"""``sweep``: Optuna hyper-parameter studies (``visionops sweep MODEL``), one section per model.

Each model section names the objective (a validation metric the model's LightningModule logs every
validation), its direction, the sampler seed, the pruner, a reduced training *budget* (dotted params keys
applied to every trial) and the search *space* (dotted params key -> distribution). The keys of ``budget``
and ``space`` are checked against the whole params schema when a sweep starts
(:func:`visionops.sweep.space.check_space`), because this module cannot import :class:`~visionops.config.Params`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from visionops.config.base import Section

Scalar = bool | int | float | str | None


class SearchDim(Section):
    """One search-space entry: ``{type: float, low: 1e-4, high: 1e-2, log: true}``, ``{type: int, low: 1, high:
    4}`` or ``{type: categorical, choices: [4, 8]}`` (Optuna's ``suggest_float/int/categorical``)."""

    type: Literal["float", "int", "categorical"]
    low: float | None = Field(None, description="float/int: lower bound (inclusive)")
    high: float | None = Field(None, description="float/int: upper bound (inclusive)")
    log: bool = Field(False, description="float/int: sample on a log scale (low must be > 0)")
    step: float | None = Field(None, description="float/int: grid step (not with log)")
    choices: list[Scalar] | None = Field(None, description="categorical: the values to choose from")

    @model_validator(mode="after")
    def _consistent(self) -> SearchDim:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical entry needs a non-empty 'choices' list, e.g. {type: categorical, "
                                 "choices: [4, 8]}")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical entry takes only 'choices' (no low/high/log/step)")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} entry takes low/high, not 'choices' (use type: categorical)")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} entry needs 'low' and 'high', e.g. {{type: {self.type}, low: 1, high: 4}}")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"needs finite low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("'step' and 'log: true' cannot be combined (Optuna samples one or the other)")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.type == "int":
            for name in ("low", "high", "step"):
                value = getattr(self, name)
                if value is not None and float(value) != int(value):
                    raise ValueError(f"an int entry needs whole numbers; {name}={value}")
        return self


class ModelSweepParams(Section):
    """Settings shared by the per-model sections (their defaults differ)."""

    direction: Literal["maximize", "minimize"]
    seed: int = Field(0, description="TPE sampler seed (worker i of --workers K uses seed + i)")
    startup_trials: int = Field(4, ge=0, description="random trials before TPE (multivariate) takes over")
    pruner: Literal["median", "hyperband", "none"] = Field("median", description="early stopping of bad trials")
    pruner_startup_trials: int = Field(2, ge=0, description="median: trials that finish before any is pruned")
    min_epochs: int = Field(1, ge=0, description="epochs (0-based index of the reported validation) before a "
                            "trial may be pruned: median n_warmup_steps, hyperband min_resource (at least 1)")
    reduction_factor: int = Field(3, ge=2, description="hyperband: keep 1/reduction_factor per rung")
    budget: dict[str, Any] = Field(default_factory=dict, description="dotted params key -> value applied to every "
                                   "trial: the reduced training budget (epochs, steps); must validate every epoch "
                                   "for pruning to see intermediate values")
    space: dict[str, SearchDim] = Field(default_factory=dict, description="dotted params key -> distribution")

    @model_validator(mode="after")
    def _budget_and_space_apart(self) -> ModelSweepParams:
        both = sorted(set(self.budget) & set(self.space))
        if both:
            raise ValueError(f"keys both fixed in 'budget' and searched in 'space': {both}; keep each in one place")
        return self


class DetectNetSweepParams(ModelSweepParams):
    """``sweep.detectnet_v2``: phase-1 training on data/kitti/{train,val}, scored on val (loss or KPIs)."""

    # val/loss by default: after a CPU-sized budget every trial's mAP is still 0 (the default 10-epoch phase 1 reaches
    # 0.003), which gives the sampler and the pruner nothing to compare; the loss does. It compares trials only
    # while the space leaves the loss weights alone, so coverage_foreground_weight is not in the default space.
    metric: Literal["val/loss", "val/mAP", "val/mAP_11", "val/precision", "val/recall", "val/accuracy"] = Field(
        "val/loss", description="logged by DetectNetModule after every validation")
    direction: Literal["maximize", "minimize"] = "minimize"
    budget: dict[str, Any] = Field(default_factory=lambda: {
        "detectnet_v2.train.epochs": 4, "detectnet_v2.train.validate_every": 1})
    space: dict[str, SearchDim] = Field(default_factory=lambda: {
        "detectnet_v2.train.max_lr": SearchDim(type="float", low=1e-4, high=3e-3, log=True),
        "detectnet_v2.train.soft_start": SearchDim(type="float", low=0.05, high=0.3),
        "detectnet_v2.train.annealing": SearchDim(type="float", low=0.5, high=0.9),
    })


class Sparse4DSweepParams(ModelSweepParams):
    """``sweep.sparse4d``: training on data/ovpkl + data/frames + data/anchors, scored on the val split."""

    metric: Literal["val/loss", "val/recall_2m", "val/precision_2m", "val/centre_error_m"] = Field(
        "val/loss", description="logged by Sparse4DModule after every validation")
    direction: Literal["maximize", "minimize"] = "minimize"
    budget: dict[str, Any] = Field(default_factory=lambda: {
        "sparse4d.train.epochs": 3, "sparse4d.train.steps_per_epoch": 40, "sparse4d.train.validate_every": 1})
    space: dict[str, SearchDim] = Field(default_factory=lambda: {
        "sparse4d.train.lr": SearchDim(type="float", low=5e-5, high=1e-3, log=True),
        "sparse4d.train.backbone_lr_mult": SearchDim(type="float", low=0.1, high=1.0),
        "sparse4d.train.weight_decay": SearchDim(type="float", low=1e-4, high=1e-2, log=True),
    })


class SweepParams(Section):
    """Where studies live and how crashed workers are detected; one section per model."""

    storage: str | None = Field(None, description="SQLAlchemy URL of the Optuna storage; null = "
                                "VISIONOPS_SWEEP_STORAGE or sqlite:///<root>/mlruns/optuna.db")
    output_dir: str = Field("sweeps", description="results go to <root>/<output_dir>/<study>/")
    heartbeat_interval: int = Field(30, ge=1, description="seconds between a running trial's heartbeats")
    grace_period: int = Field(120, ge=1, description="a running trial without a heartbeat for this long is "
                              "failed (its worker died) and retried")
    max_retry: int = Field(1, ge=0, description="retries of a trial whose worker died")
    detectnet_v2: DetectNetSweepParams = Field(default_factory=DetectNetSweepParams)
    sparse4d: Sparse4DSweepParams = Field(default_factory=Sparse4DSweepParams)

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> SweepParams:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period}) must exceed heartbeat_interval "
                             f"({self.heartbeat_interval}), or live trials would be failed as stale")
        return self
