"""Export DetectNet_v2 to ONNX with the names DeepStream's built-in DetectNet parser expects.

``input_1`` (N, 3, H, W) float RGB / 255 (no mean subtraction) -> ``output_cov/Sigmoid`` (N, C, H/16, W/16)
coverage probabilities and ``output_bbox/BiasAdd`` (N, 4C, H/16, W/16) box regression (edge distances / 35,
offset 0.5), the batch axis dynamic. These are TAO's tensor names, so ``NvDsInferParseCustomResnet`` and an
nvinfer config written for DashCamNet work unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visionops.export.onnx_io import export_module
from visionops.models.detectnet_v2.model import DetectNetExport, DetectNetV2, check_input_size

FAMILY = "detectnet_v2"
INPUT_NAME = "input_1"
OUTPUT_NAMES = ("output_cov/Sigmoid", "output_bbox/BiasAdd")


def export_detectnet_onnx(model: DetectNetV2, path: str | Path, input_size: tuple[int, int],
                          class_names: list[str] | None = None, opset: int = 18,
                          extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path``; ``input_size`` is [W, H] (multiples of 16). The model's train/eval mode is restored."""
    w, h = input_size
    check_input_size(w, h)
    was_training = model.training
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    names = list(class_names or [str(i) for i in range(model.num_classes)])
    if len(names) != model.num_classes:
        raise ValueError(f"{len(names)} class names for a model with {model.num_classes} classes")
    metadata = {"family": FAMILY, "classes": names, "input_size": [int(w), int(h)], "arch": model.arch,
                "input_scale": "1/255", "bbox_norm": 35.0, "bbox_offset": 0.5,
                "parameters": sum(p.numel() for p in model.parameters()), **(extra_metadata or {})}
    try:
        return export_module(DetectNetExport(model), (example,), path, input_names=[INPUT_NAME],
                             output_names=OUTPUT_NAMES, dynamic_axes={INPUT_NAME: {0: "batch"}},
                             metadata=metadata, opset=opset)
    finally:
        model.train(was_training)
