"""Export a trained Sparse4D to one plugin-free ONNX graph (the frame step of :mod:`sparse4d_graph`).

The deformable aggregation exports as GridSample + arithmetic (opset >= 16), so stock ONNX Runtime runs it and
TensorRT parses it without TAO's ``nv::MSDA`` plugin. Batch and camera count are dynamic axes. The file's
metadata carries what the host needs to run it without the checkpoint: classes, input size, N, T, C, the baked
frame interval, the bank's decay / validity / id threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visionops.export.onnx_io import export_module
from visionops.export.sparse4d_graph import INPUT_NAMES, Sparse4DFrameGraph, output_names
from visionops.models.sparse4d.model import Sparse4D

FAMILY = "sparse4d"


def example_inputs(model: Sparse4D, num_cameras: int, input_size: tuple[int, int], batch: int = 1,
                   seed: int = 0, prev_exists: float = 1.0) -> tuple[torch.Tensor, ...]:
    """Seeded random graph inputs in :data:`INPUT_NAMES` order (images ~N(0, 1), a plausible camera ring)."""
    w, h = input_size
    cfg, bank = model.cfg, model.instance_bank
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(batch, num_cameras, 3, h, w, generator=g)
    projection = torch.zeros(batch, num_cameras, 4, 4)
    for k in range(num_cameras):
        angle = 2 * torch.pi * k / num_cameras
        c, s = float(torch.cos(torch.tensor(angle))), float(torch.sin(torch.tensor(angle)))
        # Camera on a 12 m ring, 4 m up, looking at the origin: rows = pixel u, v, depth, homogeneous.
        rotation = torch.tensor([[s, -c, 0.0], [0.0, 0.0, -1.0], [-c, -s, 0.0]])
        translation = -rotation @ torch.tensor([12 * c, 12 * s, 4.0])
        intrinsics = torch.tensor([[0.8 * w, 0, w / 2], [0, 0.8 * w, h / 2], [0, 0, 1.0]])
        projection[:, k, :3, :3] = intrinsics @ rotation
        projection[:, k, :3, 3] = intrinsics @ translation
        projection[:, k, 3, 3] = 1.0
    image_wh = torch.tensor([float(w), float(h)]).expand(batch, num_cameras, 2).clone()
    t, c = bank.num_temp_instances, cfg.embed_dims
    cached_feature = torch.randn(batch, t, c, generator=g)
    cached_anchor = bank.anchor.detach()[None, :t].repeat(batch, 1, 1)
    exists = torch.full((batch,), float(prev_exists))
    interval = torch.ones(batch, 1, 1, dtype=torch.bool)
    return img, projection, image_wh, cached_feature, cached_anchor, exists, interval


def graph_metadata(model: Sparse4D, input_size: tuple[int, int], time_interval: float,
                   class_names: list[str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg, bank = model.cfg, model.instance_bank
    return {
        "family": FAMILY,
        "classes": list(class_names or [str(i) for i in range(cfg.num_classes)]),
        "input_size": [int(input_size[0]), int(input_size[1])],
        "num_anchor": bank.num_anchor,
        "num_temp_instances": bank.num_temp_instances,
        "embed_dims": cfg.embed_dims,
        "num_decoder": cfg.num_decoder,
        "backbone": cfg.backbone,
        "time_interval": time_interval,
        "confidence_decay": bank.confidence_decay,
        "max_time_interval": bank.max_time_interval,
        "id_threshold": cfg.score_threshold,
        "num_output": cfg.num_output,
        **(extra or {}),
    }


def export_sparse4d_onnx(model: Sparse4D, path: str | Path, num_cameras: int = 2,
                         input_size: tuple[int, int] | None = None, opset: int = 18,
                         time_interval: float | None = None, class_names: list[str] | None = None,
                         extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (ONNX). ``num_cameras`` only sets the trace's example (the axis stays dynamic).

    Args:
        model: a trained Sparse4D (left in the training/eval mode it came in).
        input_size: [W, H] of the network input; default the model config's.
        time_interval: seconds between frames baked into the graph (default the model's 1/30).
        class_names: stored in the metadata for the host (track files need the names).
    """
    size = tuple(input_size or model.cfg.input_size)
    was_training = model.training
    graph = Sparse4DFrameGraph(model, time_interval)
    dynamic = {name: {0: "batch"} for name in INPUT_NAMES}
    for name in ("img", "projection_mat", "image_wh"):
        dynamic[name] = {0: "batch", 1: "num_cams"}
    names = output_names(model.cfg.num_decoder)
    dynamic.update({name: {0: "batch"} for name in names})
    try:
        return export_module(
            graph, example_inputs(model, num_cameras, size, batch=2), path, input_names=INPUT_NAMES, output_names=names,
            dynamic_axes=dynamic, opset=opset,
            metadata=graph_metadata(model, size, graph.time_interval, class_names, extra_metadata))
    finally:
        model.train(was_training)
