"""The last DVC stage, ``pipeline_runs``: complete each family's MLflow pipeline run of this execution.

DVC restores a stage it has seen with the same inputs from its run-cache without running it, and skips stages
that are up to date: those log no child run. :func:`finalize_pipeline_runs` names them on the pipeline run and
copies their headline metrics from the DVC outputs on disk (see :mod:`visionops.headline`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionops.headline import headline_from_files
from visionops.tracking import (
    RESTORED_FROM_TAG,
    RESTORED_STAGES_TAG,
    log_headline_metrics,
    params_as_dict,
    pipeline_run,
    setup,
)

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

PIPELINE_STAGE = "pipeline_runs"
STAGE_FAMILIES = {"download": "data", "convert": "data", "prune": "detectnet_v2", "retrain": "detectnet_v2"}


def stage_family(stage: str) -> str | None:
    """Experiment family of a DVC stage by its name (``*sparse4d*``, ``*detectnet*``, download/convert...)."""
    base = stage.split("@", 1)[0]
    if base in STAGE_FAMILIES:
        return STAGE_FAMILIES[base]
    for family in ("sparse4d", "detectnet_v2", "detectnet"):
        if family in stage:
            return "detectnet_v2" if family == "detectnet" else family
    return None


def pipeline_stages(root: Path) -> list[str]:
    """Stage names of ``dvc.yaml`` (``foreach``/``matrix`` stages as expanded in ``dvc.lock``)."""
    import yaml  # noqa: PLC0415

    names: set[str] = set()
    for name, loader in (("dvc.yaml", "stages"), ("dvc.lock", "stages")):
        path = root / name
        if path.is_file():
            content = yaml.safe_load(path.read_text()) or {}
            for stage, body in (content.get(loader) or {}).items():
                templated = isinstance(body, Mapping) and ("foreach" in body or "matrix" in body)
                if not templated:
                    names.add(stage)
    return sorted(names)


def finalize_pipeline_runs(params: BaseModel | Mapping[str, Any] | None = None, *, root: Path = Path("."),
                           experiment_prefix: str = "", echo=print) -> dict[str, dict[str, Any]]:
    """Complete the pipeline run of each family for this execution (the ``pipeline_runs`` DVC stage).

    DVC restores a stage whose command, deps and params it has seen before from its run-cache without running
    it, and skips stages that are up to date: those have no child run under this execution's pipeline run.
    For each family this names them in the ``visionops.restored_stages`` tag, copies the headline metrics
    that are missing from the family's DVC outputs (``metrics/*.json``, ``data/raw/manifest.json``), names
    those files in ``visionops.restored_metrics_from``, and returns what it did per family.
    """
    import mlflow  # noqa: PLC0415

    data = params_as_dict(params)
    root = Path(root)
    families: dict[str, list[str]] = {}
    for stage in pipeline_stages(root):
        family = stage_family(stage)
        if family and stage != PIPELINE_STAGE:
            families.setdefault(family, []).append(stage)
    setup(prefix=experiment_prefix)  # before the client: it binds the tracking URI when created
    client = mlflow.MlflowClient()
    report: dict[str, dict[str, Any]] = {}
    for family, stages in sorted(families.items()):
        pipe = pipeline_run(family, data, experiment_prefix=experiment_prefix)
        children = client.search_runs([pipe.experiment_id],
                                      filter_string=f"tags.`mlflow.parentRunId` = '{pipe.run_id}'", max_results=1000)
        ran = {c.data.tags.get("dvc.stage") for c in children if c.info.status == "FINISHED"}
        restored = sorted(set(stages) - ran)
        existing = client.get_run(pipe.run_id).data.metrics
        from_files, files = headline_from_files(family, root, data)
        copied = {k: v for k, v in from_files.items() if k not in existing}
        if copied:
            log_headline_metrics(copied, run_id=pipe.run_id)
        client.set_tag(pipe.run_id, RESTORED_STAGES_TAG, ",".join(restored))
        client.set_tag(pipe.run_id, RESTORED_FROM_TAG, ",".join(files) if copied else "")
        client.set_tag(pipe.run_id, "visionops.stages", ",".join(sorted(stages)))
        client.set_terminated(pipe.run_id, "FINISHED")
        report[family] = {"run_id": pipe.run_id, "created": pipe.created, "ran": sorted(ran & set(stages)),
                          "restored": restored, "copied": sorted(copied)}
        note = (f"; not run here (DVC run-cache or up to date): {', '.join(restored)}, metrics copied from "
                f"{', '.join(files) or 'nothing'}") if restored else ""
        echo(f"[{PIPELINE_STAGE}] {family}: pipeline run {pipe.run_id}, {len(ran & set(stages))} stage runs{note}")
    return report
