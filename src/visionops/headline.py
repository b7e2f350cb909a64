"""Headline numbers of a pipeline run: short-named params and the metrics that say how a variant did.

Pure functions over params dicts and the DVC outputs on disk (metrics files, the raw-data manifest); MLflow
logging is :mod:`visionops.tracking`'s job. The evaluate stages log the names of :data:`HEADLINE_METRICS`
themselves, so a pipeline run looks the same whether its evaluate stage ran or was restored from DVC's run-cache
(then ``pipeline_completion.finalize_pipeline_runs`` copies them from the file with :func:`headline_from_files`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from visionops.config import flatten

# DVC metric files -> headline metrics of a pipeline run: {family: (file, {headline name: dotted key})}.
# The evaluate stages log these same names, so a pipeline run looks the same whether its evaluate stage ran
# or was restored from DVC's run-cache (then finalize_pipeline_runs copies them from the file).
HEADLINE_METRICS = {
    "sparse4d": ("metrics/sparse4d.json", {name: f"overall.{name}" for name in
                                           ("HOTA", "DetA", "AssA", "LocA", "MOTA", "IDF1")}),
    "detectnet_v2": ("metrics/detectnet_v2.json", {
        "mAP": "retrained.mAP_integrated", "mAP_11": "retrained.mAP_11", "precision": "retrained.precision",
        "recall": "retrained.recall", "accuracy": "retrained.accuracy", "params": "retrained.params",
        "phase1.mAP": "phase1.mAP_integrated", "phase1.precision": "phase1.precision",
        "phase1.recall": "phase1.recall", "phase1.params": "phase1.params"}),
}


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[name] = float(value)
    return out


def lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def dims_text(value: Any) -> str:
    """[960, 540] -> "960x540"; anything else as str."""
    return "x".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


def headline_params(family: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Short-named params of a pipeline run (preset, backbone, resolution, lr, epochs, ...) for the compare
    view; ``None`` values left out."""

    def get(dotted: str) -> Any:
        return lookup(params, dotted)

    data = {"data.source": get("data.source"), "data.scenes": get("data.synthetic.scenes"),
            "data.cameras": get("data.synthetic.cameras"), "data.frames": get("data.synthetic.frames")}
    if family == "sparse4d":
        preset = get("sparse4d.preset")
        backbone, size = get("sparse4d.model.backbone"), get("sparse4d.input_size")
        with contextlib.suppress(Exception):  # an unknown preset: the stage itself reports it
            from visionops.models.sparse4d.presets import get_preset  # noqa: PLC0415

            base = get_preset(preset)
            backbone, size = backbone or base.backbone, size or base.input_size
        out = {"preset": preset, "backbone": backbone, "resolution": dims_text(size) if size else None,
               "num_anchor": get("sparse4d.num_anchor"), "lr": get("sparse4d.train.lr"),
               "epochs": get("sparse4d.train.epochs"), "batch_size": get("sparse4d.train.batch_size"),
               "steps_per_epoch": get("sparse4d.train.steps_per_epoch"), **data}
    elif family == "detectnet_v2":
        size = get("detectnet_v2.input_size")
        out = {"backbone": get("detectnet_v2.arch"), "resolution": dims_text(size) if size else None,
               "lr": get("detectnet_v2.train.max_lr"), "epochs": get("detectnet_v2.train.epochs"),
               "batch_size": get("detectnet_v2.train.batch_size"), "retrain.lr": get("detectnet_v2.retrain.max_lr"),
               "retrain.epochs": get("detectnet_v2.retrain.epochs"), "prune.threshold": get("prune.threshold"),
               "postprocess": get("detectnet_v2.postprocess.algorithm"), **data}
    else:
        out = {**data, "width": get("data.synthetic.width"), "height": get("data.synthetic.height"),
               "convert.fps": get("convert.fps"), "convert.resize": get("convert.resize"),
               "convert.bev_groups": get("convert.bev_groups.mode")}
    return {k: v for k, v in out.items() if v is not None}


def headline_from_metrics(family: str, data: Mapping[str, Any]) -> dict[str, float]:
    """The headline metrics of ``family`` picked from its DVC metrics file's content (see HEADLINE_METRICS)."""
    if family not in HEADLINE_METRICS:
        return {}
    _, names = HEADLINE_METRICS[family]
    return numeric({name: lookup(data, dotted) for name, dotted in names.items()})


def data_headline(manifest: Mapping[str, Any]) -> dict[str, float]:
    """Headline numbers of the ``data`` family from ``data/raw/manifest.json``."""
    scenes = manifest.get("scenes") or []
    return {"scenes": float(len(scenes)), "cameras": float(sum(len(s["cameras"]) for s in scenes)),
            "camera_frames": float(sum(len(s["cameras"]) * (s.get("frames") or 0) for s in scenes)),
            "gt_objects": float(sum(s.get("gt_objects") or 0 for s in scenes))}


def family_metric_files(family: str, root: Path) -> list[Path]:
    """``metrics/<family>.json`` and the ``metrics/*.json`` of other stages of the family (name mentions it)."""
    files = sorted((root / "metrics").glob("*.json")) if (root / "metrics").is_dir() else []
    return [f for f in files if f.stem == family or family in f.stem.split("_") or f.stem.endswith(f"_{family}")
            or f.stem.startswith(f"{family}_")]


def generic_headline(data: Mapping[str, Any]) -> dict[str, float]:
    """Numeric leaves of another stage's metrics file (per-class / per-scene breakdowns left out)."""
    flat = flatten(data)
    return numeric({k: v for k, v in flat.items() if "per_class" not in k and "per_scene" not in k})


def headline_from_files(family: str, root: Path, params: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
    """``(metrics, files)``: the family's headline metrics as its DVC outputs on disk hold them now."""
    metrics: dict[str, float] = {}
    used: list[str] = []
    if family == "data":
        raw = Path(lookup(params, "data.raw_dir") or "data/raw")
        manifest = (raw if raw.is_absolute() else root / raw) / "manifest.json"
        if manifest.is_file():
            metrics.update(data_headline(json.loads(manifest.read_text())))
            used.append(manifest.relative_to(root).as_posix() if manifest.is_relative_to(root) else str(manifest))
        return metrics, used
    main = HEADLINE_METRICS.get(family, (None, {}))[0]
    for path in family_metric_files(family, root):
        content = json.loads(path.read_text())
        rel = path.relative_to(root).as_posix()
        picked = headline_from_metrics(family, content) if rel == main else generic_headline(content)
        metrics.update({k: v for k, v in picked.items() if k not in metrics})
        used.append(rel)
    return metrics, used
