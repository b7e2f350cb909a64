"""DVC stage ``evaluate_detectnet``: KPIs and error causes of the phase-1 and retrained DetectNet_v2 on the val split.

Files (paths relative to the repository root)::

    metrics/detectnet_v2.json              KPIs, error causes and recall by height of both models (DVC metric)
    plots/detectnet_v2/pr_<model>.csv      PR curves (dvc plots)
    reports/detectnet_v2/pr_curves.png     PR curves, a panel per model
    reports/detectnet_v2/errors.png        FP / FN causes per class, a row per model

An MLflow run in the ``detectnet_v2`` experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionops.config import Params
from visionops.pipeline.detectnet import KITTI, PHASE1, RETRAINED, _loader, load_checkpoint_model, train_config

METRICS = Path("metrics/detectnet_v2.json")
PLOTS = Path("plots/detectnet_v2")
PR_FIGURE = Path("reports/detectnet_v2/pr_curves.png")
ERROR_FIGURE = Path("reports/detectnet_v2/errors.png")


def evaluate(params: Params, *, root: Path = Path("."), echo=print) -> dict[str, Any]:
    """KPIs of the phase-1 and retrained models on the val split -> metrics JSON, PR curves, MLflow."""
    import mlflow  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from visionops import atomic, tracking  # noqa: PLC0415
    from visionops.data.kitti_dataset import KittiDetectionDataset  # noqa: PLC0415
    from visionops.evaluation.detection_errors import breakdown_errors  # noqa: PLC0415
    from visionops.evaluation.error_plot import plot_error_breakdown  # noqa: PLC0415
    from visionops.evaluation.kpi import evaluate_detections  # noqa: PLC0415
    from visionops.evaluation.pr_plot import plot_pr_curves  # noqa: PLC0415
    from visionops.training.detectnet_module import DetectNetModule  # noqa: PLC0415

    net = params.detectnet_v2
    dataset = KittiDetectionDataset(root / KITTI / "val", net.classes, tuple(net.input_size))
    loader = _loader(dataset, net.train.batch_size, 0, False, net.seed)
    metrics: dict[str, Any] = {}
    results, breakdowns = {}, {}
    box = net.evaluation_box
    # recall by GT height (network-input px) from the scored minimum up: small / medium / large
    height_bins = (box.min_height, *[edge for edge in (40.0, 80.0) if edge > box.min_height], float("inf"))
    with tracking.stage_run("evaluate_detectnet", "detectnet_v2", net, params_prefix="detectnet_v2.",
                            experiment_prefix=params.tracking.experiment_prefix, pipeline_params=params):
        for name, path in (("phase1", PHASE1), ("retrained", RETRAINED)):
            model, _ = load_checkpoint_model(root / path, net)
            module = DetectNetModule(train_config(net, net.train), total_steps=1, model=model).eval()
            predictions, ground_truth = [], []
            with torch.no_grad():
                for batch in loader:
                    for dets, boxes, labels in zip(module.detect(batch["image"]), batch["boxes"], batch["labels"],
                                                   strict=True):
                        predictions.append(dets[:, :6])
                        ground_truth.append(torch.cat([boxes, labels[:, None].float()], 1).numpy())
            kpi_args = {"iou_thresholds": net.iou_threshold, "score_threshold": net.score_threshold}
            size_args = {"min_height": box.min_height, "min_width": box.min_width}
            result = evaluate_detections(predictions, ground_truth, list(net.classes), **kpi_args, **size_args)
            breakdowns[name] = breakdown_errors(predictions, ground_truth, list(net.classes), **kpi_args,
                                                **size_args, height_bins=height_bins)
            results[name] = result
            summary = result.to_json()
            summary["evaluation_box"] = {"min_height": box.min_height, "min_width": box.min_width}
            summary["errors"] = breakdowns[name].to_json()
            # The same detections scored on every box, however small: what the size filter leaves out.
            every = evaluate_detections(predictions, ground_truth, list(net.classes), **kpi_args).to_json()
            summary["all_sizes"] = {k: every[k] for k in ("mAP_integrated", "mAP_11", "precision", "recall",
                                                          "accuracy", "TP", "FP", "FN")}
            summary["params"] = sum(p.numel() for p in model.parameters())
            metrics[name] = summary
            rows = result.pr_curve_rows(max_points_per_class=200)
            csv = "class,recall,precision,threshold\n" + "".join(
                f"{r['class']},{r['recall']:.6f},{r['precision']:.6f},{r['threshold']:.6f}\n" for r in rows)
            atomic.write_text(root / PLOTS / f"pr_{name}.csv", csv)
            errors = summary["errors"]
            flat = {**summary, **{f"all_sizes.{k}": v for k, v in summary["all_sizes"].items()},
                    **{f"errors.fp.{k}": v for k, v in errors["false_positives"].items()},
                    **{f"errors.fn.{k}": v for k, v in errors["false_negatives"].items()},
                    **{f"recall_by_height.{k}": v["recall"] for k, v in errors["recall_by_height"].items()}}
            mlflow.log_metrics({f"{name}.{k}": float(v) for k, v in flat.items()
                                if isinstance(v, int | float) and v is not None})
        atomic.write_json(root / METRICS, metrics)
        tracking.log_headline_metrics(tracking.headline_from_metrics("detectnet_v2", metrics))
        mlflow.log_artifact(str(root / METRICS))
        mlflow.log_artifact(str(plot_pr_curves(results, root / PR_FIGURE)))
        mlflow.log_artifact(str(plot_error_breakdown({name: (results[name], breakdowns[name]) for name in results},
                                                     root / ERROR_FIGURE)))
        echo(f"[evaluate_detectnet] mAP phase1 {metrics['phase1']['mAP_integrated'] or 0:.3f}, retrained "
             f"{metrics['retrained']['mAP_integrated'] or 0:.3f} (boxes >= {box.min_width:g}x{box.min_height:g} px; "
             f"every box: {metrics['phase1']['all_sizes']['mAP_integrated'] or 0:.3f}, "
             f"{metrics['retrained']['all_sizes']['mAP_integrated'] or 0:.3f}); parameters "
             f"{metrics['phase1']['params']:,} -> {metrics['retrained']['params']:,}")
    return metrics

