"""The traceable Sparse4D frame step: everything except the instance bank's Python-side state.

Exported graphs cannot keep state between calls (Sparse4D issue #98: state captured at trace time makes the
outputs constant), so the temporal cache is an *input* and the next cache an *output*, as in TAO's exporter::

    img (B, Ncam, 3, H, W), projection_mat (B, Ncam, 4, 4), image_wh (B, Ncam, 2),
    input_cached_feature (B, T, C), input_cached_anchor (B, T, 11)   (already projected to this frame),
    prev_exists (B,) float, interval_mask (B, 1, 1) bool
        --> backbone, FPN, decoder incl. the bank's update (cached first, top N - T current after them)
        --> classification1/2 (B, N, K) logits of the single-frame and last layer, prediction1..L (B, N, 11),
            quality1/2 (B, N, 2) logits, output_cached_feature (B, N, C), output_cached_anchor (B, N, 11)

Like the eager bank, temporal attention runs where ``prev_exists > 0.5`` and the cached instances are merged
into the queries where ``interval_mask`` also holds; where ``prev_exists`` is 0 the graph takes the cold-start
path (self-attention, no merge), so a cold start is a zero cache with ``prev_exists = 0``. Top-T selection
with confidence decay, ids, constant-velocity projection and decoding stay on the host
(:mod:`visionops.export.host_bank`). The refinement's ``dt`` (velocity = displacement / dt) is a
constant of the graph: export at the frame interval you deploy at.
"""

from __future__ import annotations

from torch import Tensor, nn

from visionops.models.sparse4d.instance_bank import BankFrame, merge_temporal
from visionops.models.sparse4d.model import Sparse4D

INPUT_NAMES = ("img", "projection_mat", "image_wh", "input_cached_feature", "input_cached_anchor", "prev_exists",
               "interval_mask")


def output_names(num_decoder: int) -> tuple[str, ...]:
    """TAO's output names for a decoder of ``num_decoder`` layers."""
    return ("classification1", "classification2", *(f"prediction{i + 1}" for i in range(num_decoder)),
            "quality1", "quality2", "output_cached_feature", "output_cached_anchor")


class _CacheInputs:
    """What the decoder needs from a bank: T and the update step, here on graph inputs."""

    def __init__(self, cached_feature: Tensor, cached_anchor: Tensor, valid: Tensor, num_anchor: int) -> None:
        self.num_temp_instances = cached_feature.shape[1]
        self.cached_feature, self.cached_anchor, self.valid, self.num_anchor = (
            cached_feature, cached_anchor, valid, num_anchor)

    def update(self, instance_feature: Tensor, anchor: Tensor, cls_logits: Tensor) -> tuple[Tensor, Tensor]:
        return merge_temporal(instance_feature, anchor, cls_logits, self.cached_feature, self.cached_anchor,
                              self.valid, self.num_anchor)


class Sparse4DFrameGraph(nn.Module):
    """One frame of a trained :class:`Sparse4D` with the cache as inputs/outputs (see the module docstring).

    Args:
        model: the network (put in eval mode here; its own bank state is not used).
        time_interval: seconds between frames, baked into the refinement (default: the model's
            ``default_time_interval``, 1/30 s).
    """

    def __init__(self, model: Sparse4D, time_interval: float | None = None) -> None:
        super().__init__()
        if model.cfg.num_single_frame_decoder != 1:
            raise ValueError("export supports num_single_frame_decoder = 1 (the card's layout), got "
                             f"{model.cfg.num_single_frame_decoder}")
        self.model = model.eval()
        self.time_interval = float(time_interval or model.cfg.default_time_interval)

    def forward(self, img: Tensor, projection_mat: Tensor, image_wh: Tensor, input_cached_feature: Tensor,
                input_cached_anchor: Tensor, prev_exists: Tensor, interval_mask: Tensor) -> tuple[Tensor, ...]:
        model, bank = self.model, self.model.instance_bank
        b = img.shape[0]
        features = model.extract_features(img)
        # As the eager bank: a cache that exists is attended to by every sample; it is merged into the queries
        # only where its interval is valid (same scene, |dt| small).
        exists = prev_exists.reshape(-1) > 0.5
        valid = exists & interval_mask.reshape(-1).bool()
        # 0 * mean keeps projection_mat a real input of every branch (TensorRT's shape inference wants it even
        # when a camera count makes a branch constant) and is exact.
        time_interval = img.new_full((b,), self.time_interval) + 0 * projection_mat.mean()
        frame = BankFrame(
            instance_feature=bank.instance_feature[None].expand(b, -1, -1),
            anchor=bank.anchor[None].expand(b, -1, -1),
            temp_feature=input_cached_feature,
            temp_anchor=input_cached_anchor,
            time_interval=time_interval,
            mask=exists,
            cold_fallback=True,
        )
        cache = _CacheInputs(input_cached_feature, input_cached_anchor, valid, bank.num_anchor)
        out = model.decoder(features, projection_mat, image_wh, frame, cache)
        last = len(out["prediction"]) - 1
        single = model.cfg.num_single_frame_decoder - 1
        return (out["classification"][single], out["classification"][last], *out["prediction"],
                out["quality"][single], out["quality"][last], out["instance_feature"], out["anchor"])
