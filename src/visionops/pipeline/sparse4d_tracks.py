"""Sparse4D after training: ``track_sparse4d`` (tracks of every val scene) and ``evaluate_sparse4d`` (HOTA).

``track``: the trained model streams each raw scene of ``data/raw/val`` frame by frame, all of its cameras
as one stream with the instance bank carried (:mod:`visionops.inference`), and writes one AI City 2025
11-column file for the split (the submission format: every scene in one file, scene id in column 0).

``evaluate``: that file against the ground truth of the same raw scenes, with the AI City 2025 protocol
(3D IoU of rotated boxes, trackeval's HOTA), -> ``metrics/sparse4d.json`` (a DVC metric), a per-class CSV
for ``dvc plots`` and a PNG, all in the MLflow run too; the GT track file it scored against is written
beside the tracks (``val_gt.txt``) for ``visionops evaluate hota --gt ... --pred ...``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from visionops.config import Params

MODEL = Path("models/sparse4d/model.ckpt")
RAW = Path("data/raw")
SPLIT = "val"  # the split with ground truth that training does not see
TRACKS = Path("predictions/sparse4d/val.txt")
GT_TRACKS = Path("predictions/sparse4d/val_gt.txt")
METRICS = Path("metrics/sparse4d.json")
PER_CLASS_CSV = Path("plots/sparse4d/hota_per_class.csv")
PER_CLASS_FIGURE = Path("reports/sparse4d/hota_per_class.png")


def val_scenes(root: Path) -> list[Path]:
    """The raw scene folders of the val split, sorted; a clear error when there are none."""
    split_dir = root / RAW / SPLIT
    scenes = sorted(p for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []
    if not scenes:
        raise FileNotFoundError(f"no scenes under {split_dir}: tracking is evaluated on the {SPLIT} split "
                                "(data.synthetic.scenes.val >= 1, or a real split with ground truth)")
    return scenes


def track(params: Params, *, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """Write the tracks of every val scene to ``predictions/sparse4d/val.txt``; returns counts and speed."""
    import mlflow  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415
    from visionops.evaluation.aicity_format import scene_id_from_name, write_tracks  # noqa: PLC0415
    from visionops.inference.frames import frames_from_raw_scene  # noqa: PLC0415
    from visionops.inference.stream import stream_scene  # noqa: PLC0415
    from visionops.inference.tracks import predictions_to_track_rows  # noqa: PLC0415
    from visionops.training.sparse4d_fit import load_sparse4d_checkpoint  # noqa: PLC0415

    cfg = params.sparse4d
    torch.manual_seed(cfg.train.seed)
    summary: dict[str, Any] = {"scenes": 0, "frames": 0, "rows": 0, "ids": 0}
    with tracking.stage_run("track_sparse4d", "sparse4d", cfg.infer, params_prefix="sparse4d.infer.",
                            experiment_prefix=params.tracking.experiment_prefix, pipeline_params=params):
        model, meta = load_sparse4d_checkpoint(root / MODEL)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = model.to(device)
        all_rows, seconds = [], 0.0
        for scene_dir in val_scenes(root):
            scene_id = scene_id_from_name(scene_dir.name)
            if scene_id is None:
                raise ValueError(f"{scene_dir}: not a 2025 scene name (Warehouse_017, ...); the track file "
                                 "needs its scene id")
            frames = frames_from_raw_scene(scene_dir, tuple(meta["input_size"]))
            started = time.perf_counter()
            predictions = list(stream_scene(model, frames, score_threshold=cfg.infer.tracking_threshold,
                                            progress=True))
            seconds += time.perf_counter() - started
            rows = predictions_to_track_rows(predictions, scene_id, list(meta["classes"]))
            all_rows.append(rows)
            ids = len({(int(c), int(o)) for c, o in rows[:, 1:3]}) if len(rows) else 0
            summary["scenes"] += 1
            summary["frames"] += len(predictions)
            summary["ids"] += ids
            echo(f"[track_sparse4d] {scene_dir.name}: {len(predictions)} frames, {len(rows)} rows, {ids} ids")
        rows = np.concatenate(all_rows) if all_rows else np.zeros((0, 11))
        write_tracks(root / TRACKS, rows)
        summary["rows"] = len(rows)
        summary["ms_per_frame"] = round(1e3 * seconds / max(summary["frames"], 1), 1)
        mlflow.log_metrics({f"tracks.{k}": float(v) for k, v in summary.items()})
        mlflow.log_artifact(str(root / TRACKS), artifact_path="tracks")
        echo(f"[track_sparse4d] {summary['rows']} track rows of {summary['scenes']} scenes, "
             f"{summary['ms_per_frame']} ms/frame -> {TRACKS}")
    return summary


def evaluate(params: Params, *, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """HOTA of the val tracks against the val ground truth -> metrics JSON, per-class CSV and PNG, MLflow."""
    import numpy as np  # noqa: PLC0415

    from visionops import atomic, tracking  # noqa: PLC0415
    from visionops.evaluation.aicity_format import gt_rows_from_scene, load_tracks, write_tracks  # noqa: PLC0415
    from visionops.evaluation.hota import evaluate_hota  # noqa: PLC0415
    from visionops.evaluation.report import log_to_mlflow, plot_per_class, write_json  # noqa: PLC0415

    cfg = params.sparse4d
    with tracking.stage_run("evaluate_sparse4d", "sparse4d", cfg.infer, params_prefix="sparse4d.infer.",
                            experiment_prefix=params.tracking.experiment_prefix, pipeline_params=params):
        gt = np.concatenate([gt_rows_from_scene(scene) for scene in val_scenes(root)])
        write_tracks(root / GT_TRACKS, gt)  # so `visionops evaluate hota --gt` can re-score any track file
        predictions, _ = load_tracks(root / TRACKS)
        result = evaluate_hota(gt, predictions, protocol="aicity2025")
        write_json(result, root / METRICS, extra={"split": SPLIT, "protocol": "aicity2025"})
        plot_per_class(result, _parent(root / PER_CLASS_FIGURE))
        lines = ["class,HOTA,DetA,AssA,LocA"] + [
            f"{name},{m['HOTA']:.3f},{m['DetA']:.3f},{m['AssA']:.3f},{m['LocA']:.3f}"
            for name, m in [*result.per_class.items(), ("Average", result.overall)]]
        atomic.write_text(_parent(root / PER_CLASS_CSV), "\n".join(lines) + "\n")
        log_to_mlflow(result, json_path=root / METRICS, plot_path=root / PER_CLASS_FIGURE)
        overall = result.overall
        tracking.log_headline_metrics(tracking.headline_from_metrics("sparse4d", {"overall": overall}))
        echo(f"[evaluate_sparse4d] HOTA {overall['HOTA']:.2f} (DetA {overall['DetA']:.2f}, AssA "
             f"{overall['AssA']:.2f}, LocA {overall['LocA']:.2f}) on {len(gt)} GT rows, {len(predictions)} predicted")
    return {"HOTA": overall["HOTA"], "DetA": overall["DetA"], "AssA": overall["AssA"], "LocA": overall["LocA"]}


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
