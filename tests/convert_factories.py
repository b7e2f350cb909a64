"""Helpers of the conversion tests (importable by name: tests/ is on the pytest pythonpath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionops.config import ConvertParams
from visionops.data.box_projection import NEAR
from visionops.data.ovpkl import load_ovpkl
from visionops.data.raw import RawScene
from visionops.data.schema import box_corners

RAW_PARAMS = dict(width=192, height=108, cameras=3, frames=10, workers=1, scenes={"train": 1, "val": 1},
                  floor_size=(16.0, 12.0), objects_per_scene=(6, 7), seed=3)
"""A tiny synthetic dataset: one train and one val scene, 3 cameras x 10 frames at 192x108."""


def convert_params(**overrides) -> ConvertParams:
    """ConvertParams with one worker (tests stay in-process), every frame to KITTI (the tests count one image per
    camera frame; the pipeline default thins them) and ``overrides``."""
    kitti = overrides.pop("kitti", {})
    if isinstance(kitti, dict):
        kitti = {"frame_step": 1, "val_frame_step": 1, **kitti}
    return ConvertParams(**{"workers": 1, "kitti": kitti, **overrides})


def run_conversion(raw: Path, root: Path, params: ConvertParams | None = None, num_anchor: int = 16):
    """Convert ``raw`` into ``root/data/...``; returns (OutputDirs, report, warning messages)."""
    from visionops.data.convert import OutputDirs, convert_dataset  # noqa: PLC0415

    dirs = OutputDirs.under(root)
    messages: list[str] = []
    report = convert_dataset(raw, dirs, params or convert_params(), num_anchor, echo=messages.append,
                             show_progress=False)
    return dirs, report, messages


def projected_box(row: np.ndarray, entry: dict) -> np.ndarray | None:
    """``[xmin, ymin, xmax, ymax]`` of an OVPKL box row (7,) projected with an OVPKL camera entry, unclipped;
    None when a corner is behind the near plane."""
    corners = box_corners(row[:3], row[3:6], np.array([0.0, 0.0, row[6]]))
    cam = np.concatenate([corners, np.ones((8, 1))], axis=1) @ entry["sensor2world_transform"].T
    if np.any(cam[:, 2] < NEAR):
        return None
    uv = cam[:, :3] @ entry["cam_intrinsic"].T
    uv = uv[:, :2] / uv[:, 2:3]
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def max_box_error(dirs, raw, negate: bool, scale=(1.0, 1.0), size=(192, 108)):
    """Largest |projected - GT '2d bounding box'| in px over every box fully in front of a camera."""
    worst, count = 0.0, 0
    for pkl in sorted((dirs.ovpkl / "train").glob("*.pkl")):
        data = load_ovpkl(pkl)
        gt = RawScene(raw / "train" / data["metadata"]["scene"]).ground_truth
        for info in data["infos"]:
            by_id = {(o.object_type, o.object_id): o for o in gt[info["frame_idx"]]}
            for row, name, oid in zip(info["gt_boxes"], info["gt_names"], info["instance_inds"], strict=True):
                obj = by_id[(str(name), int(oid))]
                if negate:
                    row = row.copy()
                    row[6] = -row[6]
                for cam, entry in info["cams"].items():
                    full = (obj.bbox_full or {}).get(cam)
                    box = projected_box(row, entry)
                    if full is None or box is None:
                        continue
                    w, h = size
                    box = np.array([max(box[0], 0), max(box[1], 0), min(box[2], w - 1), min(box[3], h - 1)])
                    sx, sy = scale
                    expected = np.array([(full[0] + 0.5) * sx - 0.5, (full[1] + 0.5) * sy - 0.5,
                                         (full[2] + 0.5) * sx - 0.5, (full[3] + 0.5) * sy - 0.5])
                    worst = max(worst, float(np.abs(box - expected).max()))
                    count += 1
    return worst, count
