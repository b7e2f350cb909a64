"""Run Sparse4D over one scene's frames as a tracker: batch 1, the instance bank carried frame to frame.

Per frame the network runs in eval mode under ``torch.inference_mode`` with ``scene_ids=[scene_name]`` and the
frame's timestamp, so the bank projects the previous frame's instances by ``dt`` and assigns ids (slots that
inherit a cached instance keep its id). The decoder post-processing (:class:`SparseBox3DDecoder`: top-k by raw
class probability, score = probability x centerness, threshold on the raw probability) gives the card's output
fields; boxes are moved from the group's BEV frame back to world metres (recentring is a pure translation, so
only x, y, z change; yaw and velocity are unchanged). Only tracked queries (``instance_id >= 0``) are emitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from visionops.data.ovpkl import bev_to_world
from visionops.inference.frames import FrameInputs
from visionops.models.sparse4d.postprocess import SparseBox3DDecoder


@dataclass
class FramePrediction:
    """Tracked detections of one frame (the model card's output fields, as numpy).

    Attributes:
        boxes_3d: (n, 10) float64 ``[x, y, z, w, l, h, yaw, vx, vy, vz]``: centre in world metres, sizes m,
            yaw rad, velocity m/s.
        scores_3d: (n,) float32 raw class probability x sigmoid(centerness), descending.
        labels_3d: (n,) int64 class index into the model's class names.
        cls_scores: (n,) float32 raw class probability.
        instance_ids: (n,) int64 track ids (>= 0) from the instance bank.
        instance_feats: (n, C) float32 final decoder features of the kept queries.
        frame_id: source frame index. scene_name: the stream id. timestamp: seconds.
    """

    boxes_3d: np.ndarray
    scores_3d: np.ndarray
    labels_3d: np.ndarray
    cls_scores: np.ndarray
    instance_ids: np.ndarray
    instance_feats: np.ndarray
    frame_id: int
    scene_name: str
    timestamp: float

    def __len__(self) -> int:
        return len(self.instance_ids)


def _batch(frame: FrameInputs, device: torch.device, dtype: torch.dtype) -> dict:
    """FrameInputs -> the model's keyword arguments with a batch axis of 1."""
    def tensor(x: np.ndarray, dt: torch.dtype = dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), device=device).to(dt)[None]

    return {
        "images": tensor(frame.images),
        "projection_mat": tensor(frame.projection_mat),
        "image_wh": tensor(frame.image_wh),
        "focal": tensor(frame.focal),
        # float64: epoch-like timestamps lose whole frames in float32 (the bank keeps float64 too).
        "timestamp": torch.tensor([frame.timestamp], dtype=torch.float64, device=device),
        "scene_ids": [frame.scene_name],
    }


def predict_frame(model: nn.Module, frame: FrameInputs, decoder: SparseBox3DDecoder) -> FramePrediction:
    """One forward of ``model`` (already in eval mode, bank state as left by the previous frame)."""
    param = next(model.parameters())
    with torch.inference_mode():
        out = model(**_batch(frame, param.device, param.dtype))
        if "instance_ids" not in out:
            raise RuntimeError("the model returned no instance_ids: it must be a Sparse4D in eval mode")
        det = decoder.from_outputs(out)[0]
    keep = det["instance_ids"] >= 0
    det = {k: v[keep].detach().cpu() for k, v in det.items()}
    return FramePrediction(
        boxes_3d=bev_to_world(det["boxes_3d"].double().numpy(), frame.bev_origin),
        scores_3d=det["scores_3d"].float().numpy(),
        labels_3d=det["labels_3d"].long().numpy(),
        cls_scores=det["cls_scores"].float().numpy(),
        instance_ids=det["instance_ids"].long().numpy(),
        instance_feats=det["instance_feats"].float().numpy(),
        frame_id=int(frame.frame_id),
        scene_name=frame.scene_name,
        timestamp=float(frame.timestamp),
    )


def stream_scene(model: nn.Module, frames: Iterable[FrameInputs], score_threshold: float = 0.05,
                 num_top: int = 300, restart_ids: bool = True, progress: bool = False,
                 total: int | None = None) -> Iterator[FramePrediction]:
    """Track through a scene's frames, one :class:`FramePrediction` per input frame.

    The model is reset before the first frame (``restart_ids``: ids restart at 0, a full reset between
    independent runs; False keeps the id counter so ids stay unique over several scenes written together).
    Scene changes inside ``frames`` (a new ``scene_name``) restart the bank's cache automatically. The model
    is put in eval mode and left there; its cache is dropped at the end (the id counter is kept).

    Args:
        model: a :class:`~visionops.models.sparse4d.model.Sparse4D` (anything with its forward and ``reset``), or
            an :class:`~visionops.export.onnx_tracker.OnnxSparse4DTracker` (``reset`` + ``predict_frame``).
        frames: the frames, in time order (see :mod:`visionops.inference.frames`).
        score_threshold: minimum raw class probability of an emitted detection (the card: 0.05). Fresh ids are
            assigned by the model at its own ``cfg.score_threshold``, so a lower value here does not add tracks.
        num_top: queries kept before the threshold (the card: 300).
        progress: show a tqdm bar; ``total`` is its length when known.
    """
    decoder = SparseBox3DDecoder(num_output=num_top, score_threshold=score_threshold)
    if isinstance(model, nn.Module):
        model.eval()

        def step(frame: FrameInputs, decoder: SparseBox3DDecoder) -> FramePrediction:
            return predict_frame(model, frame, decoder)
    else:  # an exported graph with its host-side bank (visionops.export.onnx_tracker.OnnxSparse4DTracker)
        step = model.predict_frame
    model.reset(restart_ids=restart_ids)
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=total, unit="frame", desc="sparse4d")
    try:
        for frame in frames:
            prediction = step(frame, decoder)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(tracks=len(prediction), refresh=False)
            yield prediction
    finally:
        if bar is not None:
            bar.close()
        # The cache holds inference-mode tensors; a later training step must not meet them.
        model.reset()
