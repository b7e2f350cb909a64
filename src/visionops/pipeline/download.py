"""The ``download`` stage: raw scenes into ``data/raw`` plus an MLflow run in the ``data`` experiment."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from visionops.config import Params


def run(params: Params, *, echo=print) -> dict[str, Any]:
    """Run the download for ``params.data`` inside an MLflow stage run; returns the manifest."""
    import mlflow  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415
    from visionops.data.download import MANIFEST_FILE, run_download  # noqa: PLC0415
    from visionops.data.preview import class_counts, scene_preview  # noqa: PLC0415
    from visionops.data.raw import RawScene  # noqa: PLC0415

    data = params.data
    with tracking.stage_run("download", "data", data, params_prefix="data.",
                            experiment_prefix=params.tracking.experiment_prefix,
                            log_system_metrics=params.tracking.log_system_metrics, pipeline_params=params):
        manifest = run_download(data, progress=lambda msg: echo(f"[download] {msg}"))
        raw_dir = Path(data.raw_dir)
        scenes = manifest["scenes"]
        metrics = {
            "scenes": len(scenes),
            "cameras": sum(len(s["cameras"]) for s in scenes),
            "camera_frames": sum(len(s["cameras"]) * (s["frames"] or 0) for s in scenes),
            "gt_objects": sum(s["gt_objects"] for s in scenes),
            "bytes": manifest["bytes"],
            "fetch_seconds": manifest["seconds"]["fetch"],
            "validate_seconds": manifest["seconds"]["validate"],
        }
        for split in sorted({s["split"] for s in scenes}):
            metrics[f"{split}.scenes"] = sum(1 for s in scenes if s["split"] == split)
        mlflow.log_metrics(metrics)
        tracking.log_headline_metrics(tracking.data_headline(manifest))
        info = manifest["source_info"]
        if "commit" in info:
            mlflow.set_tag("data.hf_commit", info["commit"])
        mlflow.log_artifact(str(raw_dir / MANIFEST_FILE))
        with tempfile.TemporaryDirectory() as tmp:
            for entry in scenes[:3]:  # previews of a few scenes: enough to eyeball, cheap to make
                scene = RawScene(raw_dir / entry["split"] / entry["name"])
                if scene.has_ground_truth:
                    counts = class_counts(scene)
                    mlflow.log_metrics({f"{entry['split']}.{entry['name']}.tracks.{k}": v for k, v in counts.items()})
                png = Path(tmp) / f"preview_{entry['split']}_{entry['name']}.png"
                scene_preview(scene, frame=0).save(png)
                mlflow.log_artifact(str(png), artifact_path="previews")
        echo(f"[download] {metrics['scenes']} scenes, {metrics['camera_frames']} camera-frames, "
             f"{metrics['bytes'] / 1e6:.1f} MB in {metrics['fetch_seconds']:.1f} s -> {raw_dir}")
    return manifest
