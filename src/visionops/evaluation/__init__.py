"""Evaluation: AI City 2025 Track 1 HOTA (3D IoU protocol), track-file I/O, reports.

Public API (loaded on first use so that importing :mod:`visionops.evaluation.commands` for the CLI does not
import numpy):

- :func:`load_tracks` ``(path, permissive=False) -> (rows (N, 11) float64, notes)``
- :func:`evaluate_hota` ``(gt_rows, pred_rows, protocol="aicity2025") -> HotaResult``
- :func:`iou3d_matrix` ``(boxes_a (N, 7), boxes_b (M, 7)) -> (N, M)``
- :func:`gt_rows_from_scene` ``(scene_dir, scene_id=None) -> rows (N, 11)``
- :func:`log_to_mlflow` ``(result) -> bool``; :func:`write_json`, :func:`plot_per_class`, :func:`print_report`
- :class:`HotaResult`, :class:`TrackFileError`
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_tracks": "aicity_format",
    "parse_tracks": "aicity_format",
    "write_tracks": "aicity_format",
    "format_tracks": "aicity_format",
    "gt_rows_from_scene": "aicity_format",
    "gt_rows_from_json": "aicity_format",
    "TrackFileError": "aicity_format",
    "CLASS_NAMES": "aicity_format",
    "SCENE_IDS": "aicity_format",
    "evaluate_hota": "hota",
    "HotaResult": "hota",
    "SequenceResult": "hota",
    "METRICS": "hota",
    "iou3d_matrix": "iou3d",
    "iou3d_pairs": "iou3d",
    "log_to_mlflow": "report",
    "write_json": "report",
    "plot_per_class": "report",
    "print_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
