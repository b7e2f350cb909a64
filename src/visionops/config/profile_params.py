"""``profile``: per-device latency of the exported models (backends, sizes, repeats, capacity targets)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from visionops.config.base import Section
from visionops.profiling.names import BACKEND_NAMES  # every backend, report order (re-exported here)

__all__ = ["BACKEND_NAMES", "Backend", "DetectNetProfileParams", "ProfileParams", "Sparse4DProfileParams"]

Backend = Literal["pytorch", "pytorch_compiled", "onnxruntime_cpu", "onnxruntime_cuda", "tensorrt"]


def _sorted_unique_positive(value: list[int]) -> list[int]:
    if not value or any(v < 1 for v in value):
        raise ValueError(f"expected a non-empty list of integers >= 1, got {value}")
    return sorted(set(value))


class Sparse4DProfileParams(Section):
    """Sparse4D: latency vs number of cameras (batch 1, one BEV group per forward), as the card's table."""

    cameras: list[int] = Field(default_factory=lambda: [1, 2, 4, 6, 8],
                               description="camera counts to time (real cameras repeated when the scene has fewer)")
    fps_targets: list[float] = Field(default_factory=lambda: [30.0, 15.0, 10.0],
                                     description="frame rates of the capacity table (cameras one device sustains)")
    frames: int = Field(4, ge=1, description="distinct real frames cycled through while timing")

    @field_validator("cameras")
    @classmethod
    def _cameras(cls, value: list[int]) -> list[int]:
        return _sorted_unique_positive(value)

    @field_validator("fps_targets")
    @classmethod
    def _fps(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value):
            raise ValueError(f"expected a non-empty list of frame rates > 0, got {value}")
        return sorted(set(value), reverse=True)


class DetectNetProfileParams(Section):
    """DetectNet_v2: latency vs batch size; the largest batch under the budget (the DashCamNet card's method)."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16], description="batch sizes to time")
    latency_budget_ms: float = Field(33.0, gt=0, description="per-batch budget: 33 ms = 30 FPS (the card)")
    images: int = Field(16, ge=1, description="distinct real validation images tiled into the batches")

    @field_validator("batch_sizes")
    @classmethod
    def _batches(cls, value: list[int]) -> list[int]:
        return _sorted_unique_positive(value)


class ProfileParams(Section):
    """The ``profile`` stage and ``visionops profile``: backends, timing protocol and per-model sizes."""

    backends: list[Backend] = Field(default_factory=lambda: list(BACKEND_NAMES),
                                    description="backends to time; unavailable ones are skipped with the reason")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present, else CPU")
    warmup: int = Field(3, ge=0, description="untimed calls before each measured series")
    repeats: int = Field(10, ge=1, description="timed calls per point; median and p10/p90/IQR are reported")
    threads: int = Field(0, ge=0, description="intra-op threads for PyTorch and ONNX Runtime; 0 = library default")
    seed: int = 0
    sparse4d: Sparse4DProfileParams = Field(default_factory=Sparse4DProfileParams)
    detectnet_v2: DetectNetProfileParams = Field(default_factory=DetectNetProfileParams)

    @field_validator("backends")
    @classmethod
    def _backends(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"name at least one backend of {list(BACKEND_NAMES)}")
        return [name for name in BACKEND_NAMES if name in value]  # report order, no duplicates
