"""The result of profiling one model on one device, with its capacity table (what the reports are made of)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from visionops.profiling.capacity import cameras_at_fps, max_batch_under
from visionops.profiling.curve import BackendCurve
from visionops.profiling.device import DeviceInfo

BACKEND_LABELS = {"pytorch": "PyTorch", "pytorch_compiled": "PyTorch compiled", "onnxruntime_cpu": "ONNX Runtime CPU",
                  "onnxruntime_cuda": "ONNX Runtime CUDA", "tensorrt": "TensorRT"}
MODEL_TITLES = {"sparse4d": "Sparse4D", "detectnet_v2": "DetectNet_v2"}


@dataclass
class ProfileResult:
    """Latency curves of one model on one device.

    Attributes:
        model: ``sparse4d`` or ``detectnet_v2``. size_name: ``cameras`` or ``batch``.
        device: where it ran. curves: one per requested backend (including skipped ones).
        model_info: preset, input size, files, parameter count (free-form, shown in the reports).
        settings: warm-up, repeats, threads, seed, sizes, and the capacity targets (``fps_targets`` for Sparse4D,
            ``latency_budget_ms`` for DetectNet_v2).
        created: UTC time stamp (ISO 8601).
    """

    model: str
    size_name: str
    device: DeviceInfo
    curves: list[BackendCurve]
    model_info: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def measured(self) -> list[BackendCurve]:
        """Curves with at least one timed point, in report order."""
        return [curve for curve in self.curves if curve.points]

    def capacity(self) -> dict[str, Any]:
        """Per measured backend: Sparse4D ``{fps: SizeWithin}``, DetectNet_v2 the :func:`max_batch_under` dict."""
        out: dict[str, Any] = {}
        for curve in self.measured:
            if self.model == "sparse4d":
                out[curve.backend] = cameras_at_fps(curve.medians(), self.settings.get("fps_targets", [30, 15, 10]))
            else:
                out[curve.backend] = max_batch_under(curve.medians(), self.settings.get("latency_budget_ms", 33.0))
        return out

    def to_dict(self) -> dict[str, Any]:
        capacity = {backend: ({fps: v.to_dict() for fps, v in value.items()} if self.model == "sparse4d" else value)
                    for backend, value in self.capacity().items()}
        return {"model": self.model, "size_name": self.size_name, "created": self.created,
                "device": self.device.to_dict(), "model_info": self.model_info, "settings": self.settings,
                "capacity": capacity, "backends": [curve.to_dict() for curve in self.curves]}

    def headline(self) -> dict[str, float]:
        """The pipeline run's numbers, from the fastest measured backend: latency at the smallest size and the
        capacity (Sparse4D cameras @ 30 FPS, DetectNet_v2 largest batch under the budget and images/s)."""
        curves = [c for c in self.measured if c.medians()]
        if not curves:
            return {}
        smallest = min(min(c.medians()) for c in curves)
        fastest = min((c.medians()[smallest], c.backend) for c in curves if smallest in c.medians())
        out = {"latency_ms": float(fastest[0])}
        capacity = self.capacity()
        if self.model == "sparse4d":
            at = {fps: max(float(v[fps].size) for v in capacity.values()) for fps in next(iter(capacity.values()))}
            out.update({f"cameras_at_{fps}fps": value for fps, value in at.items()})
        else:
            out["max_batch_under_budget"] = max(float(v["batch"]) for v in capacity.values())
            rates = [v["images_per_s"] for v in capacity.values() if v["images_per_s"] is not None]
            if rates:
                out["images_per_s"] = float(max(rates))
        return out

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow: ``<backend>.<size_name>_<n>.median_ms`` ... and the capacity values."""
        out: dict[str, float] = {}
        for curve in self.measured:
            for size, stats in curve.points.items():
                prefix = f"{curve.backend}.{self.size_name}_{size}"
                out[f"{prefix}.median_ms"] = stats.median_ms
                out[f"{prefix}.p90_ms"] = stats.p90_ms
        for backend, value in self.capacity().items():
            if self.model == "sparse4d":
                for fps, within in value.items():
                    out[f"{backend}.cameras_at_{fps}fps"] = float(within.size)
            else:
                out[f"{backend}.max_batch_under_budget"] = float(value["batch"])
                if value["images_per_s"] is not None:
                    out[f"{backend}.images_per_s"] = float(value["images_per_s"])
        return out
