"""``export``: ONNX graphs of both models, parity checks, TensorRT engines where possible, registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from visionops.config.base import Section


class TensorRTParams(Section):
    """Engines built when ``tensorrt`` imports and a CUDA GPU is present (otherwise skipped with the reason)."""

    precisions: list[Literal["fp32", "fp16", "int8"]] = Field(
        default_factory=lambda: ["fp16", "int8"], description="one engine per precision")
    workspace_gb: float = Field(4.0, gt=0, description="builder workspace, GiB")
    calibration_batches: int = Field(10, ge=1, description="INT8: batches of real frames fed to the calibrator")
    calibration_batch_size: int = Field(4, ge=1, description="INT8: images (DetectNet) / frames (Sparse4D) a batch")
    max_batch: int = Field(16, ge=1, description="DetectNet_v2 engines: largest batch of the profile")
    max_cameras: int = Field(20, ge=1, description="Sparse4D engines: most cameras of the profile (TAO: 20)")


class ExportParams(Section):
    """Both models' exports (``exports/<model>/``) and their parity checks against PyTorch."""

    opset: int = Field(18, ge=17, description="ONNX opset (GridSample needs >= 16; the dynamo exporter wants 18)")
    sparse4d_cameras: int = Field(4, ge=1, description="cameras of the trace example (the axis stays dynamic)")
    sparse4d_time_interval: float | None = Field(
        None, gt=0, description="seconds between frames baked into the graph; null = the model's (1/30)")
    parity_tolerance: float = Field(
        1e-3, gt=0, description="max |ONNX Runtime - PyTorch| / max(1, max |PyTorch|) per output (fp32)")
    registry: bool = Field(True, description="log + register in MLflow (visionops-<model>, alias 'current')")
    tensorrt: TensorRTParams = Field(default_factory=TensorRTParams)

    @field_validator("opset")
    @classmethod
    def _opset(cls, value: int) -> int:
        if value > 23:
            raise ValueError(f"opset {value} is newer than this onnx supports (<= 23)")
        return value
