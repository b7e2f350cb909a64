"""Track with an exported Sparse4D: ONNX Runtime runs the graph, :mod:`host_bank` carries the state.

A drop-in for the PyTorch model in :func:`visionops.inference.stream.stream_scene` (it has ``reset`` and
``predict_frame``), so ``visionops infer sparse4d --onnx model.onnx`` writes the same track file as the
checkpoint it was exported from. Everything the host needs comes from the file's metadata.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from visionops.data.ovpkl import bev_to_world
from visionops.export.host_bank import HostInstanceBank
from visionops.export.host_decode import decode_tracked
from visionops.export.onnx_io import ExportError, inference_session, read_metadata
from visionops.inference.frames import FrameInputs
from visionops.inference.stream import FramePrediction
from visionops.models.sparse4d.postprocess import SparseBox3DDecoder


class OnnxSparse4DTracker:
    """Stateful frame-by-frame tracker over an exported graph (batch 1).

    Args:
        path: the ``.onnx`` written by :func:`visionops.export.sparse4d_onnx.export_sparse4d_onnx`.
        providers: ONNX Runtime execution providers (default CPU).
        threads: intra-op threads (default: ONNX Runtime's choice).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        if self.meta.get("family") != "sparse4d":
            raise ExportError(f"{self.path}: exported from a {self.meta.get('family')!r} model, not Sparse4D")
        self.session = inference_session(self.path, providers, threads)
        meta = self.meta
        self.class_names = list(meta["classes"])
        self.input_size = tuple(meta["input_size"])
        self.bank = HostInstanceBank(meta["num_anchor"], meta["num_temp_instances"], meta["embed_dims"],
                                     meta["confidence_decay"], meta["max_time_interval"], meta["id_threshold"])
        last = meta["num_decoder"]
        # last-layer outputs the host needs: classification, boxes, quality, and the state to cache
        self.fetch = ["classification2", f"prediction{last}", "quality2", "output_cached_feature",
                       "output_cached_anchor"]
        self._warned_dt = False

    def reset(self, restart_ids: bool = False) -> None:
        """Forget the cache (``restart_ids``: also restart ids at 0, as the PyTorch model's ``reset``)."""
        if restart_ids:
            self.bank.reset_ids()
        else:
            self.bank.reset()

    def feeds(self, frame: FrameInputs) -> dict[str, np.ndarray]:
        """The graph inputs of ``frame`` (starts the bank's frame: call :meth:`finish` with the outputs)."""
        h, w = frame.images.shape[-2:]
        if (w, h) != self.input_size:
            raise ValueError(f"{self.path}: exported for {self.input_size[0]}x{self.input_size[1]} inputs, got "
                             f"{w}x{h} frames (prepare frames at the exported size or re-export)")
        previous = self.bank.timestamp
        cache = self.bank.inputs([frame.timestamp], [frame.scene_name])
        if previous is not None and cache.prev_exists[0] > 0 and not self._warned_dt:
            dt = float(frame.timestamp - previous[0])
            if abs(dt - self.meta["time_interval"]) > 0.01 * self.meta["time_interval"]:
                self._warned_dt = True
                warnings.warn(f"{self.path}: frames are {dt:.4f} s apart but the graph was exported for "
                              f"{self.meta['time_interval']:.4f} s; velocities scale wrongly (re-export with "
                              "--time-interval)", stacklevel=2)
        return {
            "img": np.ascontiguousarray(frame.images[None], dtype=np.float32),
            "projection_mat": np.ascontiguousarray(frame.projection_mat[None], dtype=np.float32),
            "image_wh": np.ascontiguousarray(frame.image_wh[None], dtype=np.float32),
            **cache.feeds(),
        }

    def predict_frame(self, frame: FrameInputs, decoder: SparseBox3DDecoder) -> FramePrediction:
        """One frame: run the graph, update the host bank, decode (``decoder``'s top-k and threshold)."""
        cls, prediction, quality, feature, anchor = self.session.run(self.fetch, self.feeds(frame))
        ids = self.bank.cache(cls, feature, anchor)
        det = decode_tracked(cls[0], prediction[0], quality[0], ids[0], feature[0], decoder.num_output,
                             decoder.score_threshold)
        keep = det["instance_ids"] >= 0
        det = {k: v[keep] for k, v in det.items()}
        return FramePrediction(
            boxes_3d=bev_to_world(det["boxes_3d"].astype(np.float64), frame.bev_origin),
            scores_3d=det["scores_3d"].astype(np.float32),
            labels_3d=det["labels_3d"].astype(np.int64),
            cls_scores=det["cls_scores"].astype(np.float32),
            instance_ids=det["instance_ids"].astype(np.int64),
            instance_feats=det["instance_feats"].astype(np.float32),
            frame_id=int(frame.frame_id),
            scene_name=frame.scene_name,
            timestamp=float(frame.timestamp),
        )
