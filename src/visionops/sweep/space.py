"""The search space of a sweep: checking its keys, sampling a trial's values, and turning values into params.

A trial's parameters are the base params (``params.yaml`` + ``-S``) with the section's ``budget`` and the
sampled values applied as dotted ``key=value`` overrides, exactly the ``-S`` syntax of ``dvc exp run``, so
what a trial trained with is what ``best_params.yaml`` tells the user to pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import yaml

from visionops.config import ConfigError, Params, apply_overrides, digest, flatten, validate_params
from visionops.config.sweep_params import ModelSweepParams, SearchDim

if TYPE_CHECKING:  # pragma: no cover
    import optuna

MODELS = ("detectnet_v2", "sparse4d")
"""Models with a sweep objective; each has a ``sweep.<model>`` params section."""


def check_model(model: str) -> str:
    """``model`` if it has a sweep objective, else a :class:`ConfigError` listing the ones that do."""
    if model not in MODELS:
        raise ConfigError(f"unknown sweep model {model!r}; choose one of {', '.join(MODELS)} "
                          "(search spaces: sweep.<model> in params.yaml)")
    return model


def sweep_section(params: Params, model: str) -> ModelSweepParams:
    return getattr(params.sweep, check_model(model))


def format_value(value: Any) -> str:
    """A value as YAML text that :func:`visionops.config.parse_override` reads back unchanged (floats
    round-trip exactly: PyYAML writes ``repr``, with the ``.0`` its float resolver needs, e.g. ``1.0e-05``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def override_args(values: Mapping[str, Any]) -> list[str]:
    """``{"a.b": 1e-3}`` -> ``["a.b=0.001"]``: the ``-S`` arguments that set ``values``."""
    return [f"{key}={format_value(value)}" for key, value in values.items()]


def check_space(params: Params, model: str) -> None:
    """Every ``budget`` and ``space`` key of ``sweep.<model>`` must be a key of the model's own params section
    (other sections do not reach the trial's training) and accept its values; raises :class:`ConfigError`
    naming the entry and the fix."""
    cfg = sweep_section(params, model)
    base = params.model_dump(mode="json")
    for kind, entries in (("budget", cfg.budget), ("space", cfg.space)):
        for key, entry in entries.items():
            where = f"sweep.{model}.{kind}[{key!r}]"
            if not key.startswith(f"{model}."):
                raise ConfigError(f"{where}: the key must be in the {model} section (e.g. {model}.train.epochs); "
                                  "a trial only trains the model, so other sections would not change its result")
            samples = _extremes(entry) if isinstance(entry, SearchDim) else [entry]
            for sample in samples:
                try:
                    data = apply_overrides(base, override_args({key: sample}))
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
                validate_params(data, f"{where} = {sample!r}")  # its message names the entry and the field


def _extremes(dim: SearchDim) -> list[Any]:
    """The values a dimension can reach at its ends: each must be a valid params value."""
    if dim.type == "categorical":
        return list(dim.choices or [])
    if dim.type == "int":
        return [int(dim.low), int(dim.high)]
    return [float(dim.low), float(dim.high)]


def suggest(trial: optuna.Trial, space: Mapping[str, SearchDim]) -> dict[str, Any]:
    """Sample every entry of ``space`` through ``trial`` (parameter name = the dotted params key)."""
    values: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.type == "categorical":
            values[key] = trial.suggest_categorical(key, list(dim.choices or []))
        elif dim.type == "int":
            step = int(dim.step) if dim.step is not None else 1
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), step=step, log=dim.log)
        else:
            values[key] = trial.suggest_float(key, float(dim.low), float(dim.high), step=dim.step, log=dim.log)
    return values


def trial_params(params: Params, model: str, values: Mapping[str, Any]) -> Params:
    """The params one trial trains with: ``params`` + the model's ``budget`` + the sampled ``values``."""
    cfg = sweep_section(params, model)
    args = override_args({**cfg.budget, **values})
    return validate_params(apply_overrides(params.model_dump(mode="json"), args), f"sweep trial overrides {args}")


def fingerprint(params: Params, model: str, ignore: Iterable[str] = ()) -> str:
    """Digest of what makes trials of one study comparable: the objective, the budget, the space, and the model's
    base params other than the searched and budgeted keys. A study remembers it; continuing the study with
    different settings is refused (its trials would not be comparable)."""
    cfg = sweep_section(params, model)
    skipped = {*cfg.budget, *cfg.space, *ignore}
    section = getattr(params, model).model_dump(mode="json")
    base = {f"{model}.{k}": v for k, v in flatten(section).items() if f"{model}.{k}" not in skipped}
    settings = cfg.model_dump(mode="json", include={"metric", "direction", "budget", "space"})
    return digest({"base": base, "sweep": settings})
