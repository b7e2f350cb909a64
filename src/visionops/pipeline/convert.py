"""The ``convert`` stage: raw scenes -> frame store, OVPKL, KITTI, anchors, plus an MLflow run in ``data``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from visionops.config import Params


def camera_previews(ovpkl_dir: Path, root: Path, out_dir: Path, max_scenes: int = 1) -> list[Path]:
    """One PNG per camera of the first scene(s): the stored frame with the OVPKL boxes projected through
    the OVPKL camera matrices (so it checks the converted geometry, not the raw one)."""
    from PIL import Image  # noqa: PLC0415

    from visionops.data.frame_store import FrameStore  # noqa: PLC0415
    from visionops.data.ovpkl import load_ovpkl  # noqa: PLC0415
    from visionops.data.preview import draw_box3d  # noqa: PLC0415

    written: list[Path] = []
    done_cameras: set[tuple[str, str]] = set()
    scenes: list[str] = []
    for pkl in sorted(ovpkl_dir.glob("*/*.pkl")):
        scene = pkl.name.split("+", 1)[0]  # <Scene>+<group>_infos_<split>.pkl
        if scene not in scenes:
            if len(scenes) >= max_scenes:
                continue
            scenes.append(scene)
        infos = load_ovpkl(pkl)["infos"]
        if not infos:
            continue
        # The frame with the most boxes shows the most geometry.
        info = max(infos, key=lambda i: (len(i["gt_boxes"]), -i["frame_idx"]))
        for cam, entry in info["cams"].items():
            if (scene, cam) in done_cameras:
                continue
            done_cameras.add((scene, cam))
            store_path, key = entry["data_path"]
            path = Path(store_path) if Path(store_path).is_absolute() else root / store_path
            with FrameStore(path) as store:
                image = Image.fromarray(store.rgb(info["frame_idx"]))
            projection = entry["cam_intrinsic"] @ entry["sensor2world_transform"][:3, :]
            visible = [i for i, vis in enumerate(info["gt_visibility"]) if vis.get(cam, 0) != 0]
            ids = info["instance_inds"]
            draw_box3d(image, info["gt_boxes"][visible], info["gt_names"][visible], projection,
                       labels=[f"{info['gt_names'][i]} {ids[i]}" for i in visible])
            png = out_dir / f"{scene}_{cam}_{info['frame_idx']:05d}.png"
            image.save(png)
            written.append(png)
    return written


def run(params: Params, *, root: str | Path = ".", echo=print, show_progress: bool = True) -> dict[str, Any]:
    """Run the conversion of ``params.data.raw_dir`` inside an MLflow stage run; returns the report."""
    import mlflow  # noqa: PLC0415

    from visionops import tracking  # noqa: PLC0415
    from visionops.data.convert import CONVERSION_FILE, OutputDirs, convert_dataset  # noqa: PLC0415

    root = Path(root)
    dirs = OutputDirs.under(root)
    raw_dir = Path(params.data.raw_dir)
    raw_dir = raw_dir if raw_dir.is_absolute() else root / raw_dir
    with tracking.stage_run("convert", "data", params.convert, params_prefix="convert.",
                            experiment_prefix=params.tracking.experiment_prefix,
                            log_system_metrics=params.tracking.log_system_metrics, pipeline_params=params):
        mlflow.log_param("sparse4d.num_anchor", params.sparse4d.num_anchor)
        report = convert_dataset(raw_dir, dirs, params.convert, params.sparse4d.num_anchor,
                                 echo=lambda msg: echo(f"[convert] {msg}"), show_progress=show_progress)
        summary, timing = report["summary"], report["timing"]
        metrics: dict[str, float] = {
            "scenes": len(summary["scenes"]),
            "cameras": sum(len(s["cameras"]) for s in summary["scenes"]),
            "camera_frames": timing["camera_frames"],
            "bev_groups": len(summary["ovpkl"]),
            "ovpkl_infos": sum(f["frames"] for f in summary["ovpkl"]),
            "ovpkl_boxes": sum(f["boxes"] for f in summary["ovpkl"]),
            "objects": summary["objects"],
            "warnings": sum(len(s["warnings"]) for s in summary["scenes"]),
            **{f"bytes.{name}": value for name, value in report["bytes"].items()},
            **{f"seconds.{k.removesuffix('_seconds')}": v for k, v in timing.items() if k.endswith("_seconds")},
            **{f"cpu_seconds.{k.removesuffix('_seconds_cpu')}": v for k, v in timing.items()
               if k.endswith("_seconds_cpu")},
            "frames_per_second": timing["frames_per_second"],
        }
        for split, counts in summary["kitti"].items():
            metrics[f"kitti.{split}.images"] = counts["images"]
            metrics[f"kitti.{split}.objects"] = counts["objects"]
            metrics[f"kitti.{split}.too_small"] = counts["too_small"]
        if summary["anchors"]:
            metrics["anchors.padded"] = summary["anchors"]["padded"]
            metrics["anchors.inertia"] = summary["anchors"]["inertia"]
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(dirs.ovpkl / CONVERSION_FILE))
        with tempfile.TemporaryDirectory() as tmp:
            for png in camera_previews(dirs.ovpkl, root, Path(tmp)):
                mlflow.log_artifact(str(png), artifact_path="previews")
        echo(f"[convert] {metrics['scenes']} scenes, {metrics['camera_frames']} camera-frames at "
             f"{metrics['frames_per_second']:.1f} frames/s, {metrics['bev_groups']} BEV groups, "
             f"{sum(c['images'] for c in summary['kitti'].values())} KITTI images, "
             f"{sum(report['bytes'].values()) / 1e6:.1f} MB in {timing['total_seconds']:.1f} s")
    return report
