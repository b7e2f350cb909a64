"""Sparse4D decoder: the operation list of the card, run over the instance set of one frame.

For 6 layers with 1 single-frame layer the order is (39 entries; indices are module names, ``layers.<i>``)::

    layer 0:      deformable, ffn, norm, refine
    layers 1..5:  temp_gnn, gnn, norm, deformable, ffn, norm, refine

(the official builder writes ``[gnn, norm, deformable, ffn, norm, refine]`` per single-frame layer and
``[temp_gnn] + that`` per temporal layer, then drops the first two entries). After the last single-frame
``refine`` the instance bank's ``update`` mixes in the cached instances; from then on ``temp_gnn`` attends to
the cache. Quirk kept from both repos: after the refine of every layer >= 1, the *key position embedding* of
the temporal set is replaced by the current embeddings of instances 0..T-1 (``anchor_embed[:, :T]``) while the
keys' features stay the cached ones - so temporal layers >= 2 use it.

Denoising (training): :class:`DenoisingQueries` are appended after the N normal queries; self-attention
uses a block mask (normal <-> DN blocked, DN groups as the given (M, M) mask), temporal attention is
unmasked. Outputs are split back into normal and ``dn_*`` parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from visionops.models.sparse4d.anchor_encoder import SparseBox3DEncoder
from visionops.models.sparse4d.attention import ResidualMHA, decoupled_attention
from visionops.models.sparse4d.box_state import STATE_DIM
from visionops.models.sparse4d.deformable_aggregation import DeformableFeatureAggregation
from visionops.models.sparse4d.ffn import AsymmetricFFN
from visionops.models.sparse4d.instance_bank import BankFrame, InstanceBank
from visionops.models.sparse4d.presets import Sparse4DConfig
from visionops.models.sparse4d.refinement import SparseBox3DRefinementModule
from visionops.models.sparse4d.reid import ReIDBranch


def operation_order(num_decoder: int, num_single_frame_decoder: int) -> list[str]:
    """The decoder's op names, e.g. 39 entries for (6, 1)."""
    single = ["gnn", "norm", "deformable", "ffn", "norm", "refine"]
    temporal = ["temp_gnn", *single]
    return (single * num_single_frame_decoder + temporal * (num_decoder - num_single_frame_decoder))[2:]


@dataclass
class DenoisingQueries:
    """Extra (DN) queries for one training frame, built by the denoising helper.

    Attributes:
        anchor: (B, M, <=11) noisy GT boxes; padded with zeros to 11 dims.
        attn_mask: (M, M) bool, True = blocked (groups isolated from each other).
        feature: (B, M, C) initial features; None = zeros.
        on_update: called after the bank update with the DN part (feature (B, M, C), anchor (B, M, 11)) and
            the bank's per-sample valid mask (B,); returns the new pair, e.g. with the temporal DN groups
            swapped in (``DenoisingGenerator.temporal_update`` in a closure that also keeps its targets).
    """

    anchor: Tensor
    attn_mask: Tensor
    feature: Tensor | None = None
    on_update: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]] | None = None


def _full_mask(num_normal: int, dn_mask: Tensor) -> Tensor:
    """(N+M, N+M) bool: normal block open, DN block = dn_mask, cross blocks closed (built with cat)."""
    m = dn_mask.shape[0]
    top = torch.cat([dn_mask.new_zeros(num_normal, num_normal), dn_mask.new_ones(num_normal, m)], dim=1)
    bottom = torch.cat([dn_mask.new_ones(m, num_normal), dn_mask], dim=1)
    return torch.cat([top, bottom], dim=0).bool()


class Sparse4DDecoder(nn.Module):
    """Anchor encoder, shared attention projections and the op list.

    Args:
        cfg: architecture hyper-parameters (:class:`~visionops.models.sparse4d.presets.Sparse4DConfig`).
    """

    def __init__(self, cfg: Sparse4DConfig) -> None:
        super().__init__()
        c = cfg.embed_dims
        self.cfg = cfg
        self.operation_order = operation_order(cfg.num_decoder, cfg.num_single_frame_decoder)
        self.anchor_encoder = SparseBox3DEncoder(cfg.anchor_embed_dims, vel_dims=3, loops=cfg.anchor_encoder_loops)
        self.fc_before = nn.Linear(c, 2 * c, bias=False)
        self.fc_after = nn.Linear(2 * c, c, bias=False)
        self.layers = nn.ModuleList(self._build(op) for op in self.operation_order)
        self.reid = ReIDBranch(c, cfg.visibility_hidden_channels, cfg.num_ids) if cfg.use_reid else None

    def _build(self, op: str) -> nn.Module:
        cfg, c = self.cfg, self.cfg.embed_dims
        if op in ("gnn", "temp_gnn"):
            return ResidualMHA(2 * c, cfg.num_heads, cfg.attn_dropout)
        if op == "norm":
            return nn.LayerNorm(c)
        if op == "ffn":
            return AsymmetricFFN(2 * c, c, cfg.ffn_channels, cfg.ffn_dropout)
        if op == "deformable":
            return DeformableFeatureAggregation(
                c, cfg.num_groups, cfg.num_levels, cfg.num_learnable_pts, cfg.fix_scale, cfg.dfa_attn_drop,
                cfg.use_camera_embed, cfg.max_num_cams, cfg.camera_translation_scale, "cat")
        if op == "refine":
            return SparseBox3DRefinementModule(c, cfg.num_classes, cfg.refine_yaw, cfg.with_quality_estimation,
                                               cfg.add_anchor_velocity)
        raise ValueError(f"unknown decoder op {op!r}")

    def forward(
        self,
        feature_maps: Sequence[Tensor],
        projection_mat: Tensor,
        image_wh: Tensor,
        frame: BankFrame,
        bank: InstanceBank,
        dn: DenoisingQueries | None = None,
    ) -> dict:
        """Run all ops.

        Args:
            feature_maps: L tensors (B, Ncam, C, H_l, W_l).
            projection_mat: (B, Ncam, 4, 4) world->pixel; image_wh: (B, Ncam, 2) [W, H].
            frame: the bank's :class:`BankFrame` for this frame.
            bank: the instance bank (its ``update`` runs after the single-frame layers).
            dn: optional denoising queries (training).

        Returns:
            dict with per-layer lists ``classification`` (B, N, num_classes) logits, ``prediction`` (B, N, 11),
            ``quality`` (B, N, 2) (None entries for middle layers in eval), ``instance_feature`` (B, N, C) and
            ``anchor`` (B, N, 11) of the last layer; with ``dn`` the same lists under ``dn_*`` for the M DN
            queries plus ``dn_instance_feature``/``dn_anchor``; with re-ID ``reid`` (one dict per layer).
        """
        feature, anchor = frame.instance_feature, frame.anchor
        num_normal, attn_mask = feature.shape[1], None
        if dn is not None:
            b, m = dn.anchor.shape[:2]
            dn_anchor = torch.cat([dn.anchor, dn.anchor.new_zeros(b, m, STATE_DIM - dn.anchor.shape[-1])], dim=-1)
            dn_feature = dn.feature if dn.feature is not None else feature.new_zeros(b, m, feature.shape[-1])
            anchor = torch.cat([anchor, dn_anchor.to(anchor.dtype)], dim=1)
            feature = torch.cat([feature, dn_feature.to(feature.dtype)], dim=1)
            attn_mask = _full_mask(num_normal, dn.attn_mask.to(feature.device))
        temp_feature = frame.temp_feature
        anchor_embed = self.anchor_encoder(anchor)
        temp_embed = None if frame.temp_anchor is None else self.anchor_encoder(frame.temp_anchor)
        t = bank.num_temp_instances
        last = len(self.operation_order) - 1
        out: dict = {"classification": [], "prediction": [], "quality": [], "reid": []}
        for i, (op, layer) in enumerate(zip(self.operation_order, self.layers, strict=True)):
            if op == "temp_gnn":
                if temp_feature is None:  # cold start: official self-attention fallback (value = 2C key)
                    feature = decoupled_attention(layer, self.fc_before, self.fc_after, feature, anchor_embed,
                                                  attn_mask=attn_mask)
                else:
                    temporal = decoupled_attention(layer, self.fc_before, self.fc_after, feature, anchor_embed,
                                                   temp_feature, temp_embed, temp_feature)
                    if frame.cold_fallback:
                        cold = decoupled_attention(layer, self.fc_before, self.fc_after, feature, anchor_embed,
                                                   attn_mask=attn_mask)
                        temporal = torch.where(frame.mask[:, None, None], temporal, cold)
                    feature = temporal
            elif op == "gnn":
                feature = decoupled_attention(layer, self.fc_before, self.fc_after, feature, anchor_embed,
                                              value=feature, attn_mask=attn_mask)
            elif op in ("norm", "ffn"):
                feature = layer(feature)
            elif op == "deformable":
                result = layer(feature, anchor, anchor_embed, feature_maps, projection_mat, image_wh,
                               return_per_camera=self.reid is not None)
                if self.reid is not None:
                    result, per_camera = result
                    out["reid"].append(self.reid(per_camera))
                feature = result
            elif op == "refine":
                done = len(out["prediction"])  # layers finished before this one
                want_cls = self.training or done == self.cfg.num_single_frame_decoder - 1 or i == last
                anchor, cls, quality = layer(feature, anchor, anchor_embed, frame.time_interval, want_cls)
                for key, value in (("prediction", anchor), ("classification", cls), ("quality", quality)):
                    out[key].append(value)
                if done + 1 == self.cfg.num_single_frame_decoder:
                    feature, anchor = bank.update(feature, anchor, cls)
                    if dn is not None and dn.on_update is not None:
                        dn_feature, dn_anchor = dn.on_update(feature[:, num_normal:], anchor[:, num_normal:],
                                                             frame.mask)
                        feature = torch.cat([feature[:, :num_normal], dn_feature], dim=1)
                        anchor = torch.cat([anchor[:, :num_normal], dn_anchor], dim=1)
                if i != last:
                    anchor_embed = self.anchor_encoder(anchor)
                if done + 1 > self.cfg.num_single_frame_decoder and temp_embed is not None:
                    temp_embed = anchor_embed[:, :t]  # the temporal-key quirk (see module docstring)
        return self._split(out, feature, anchor, num_normal, dn is not None)

    @staticmethod
    def _split(out: dict, feature: Tensor, anchor: Tensor, n: int, has_dn: bool) -> dict:
        out["instance_feature"], out["anchor"] = feature[:, :n], anchor[:, :n]
        if has_dn:
            out["dn_instance_feature"], out["dn_anchor"] = feature[:, n:], anchor[:, n:]
        for key in ("classification", "prediction", "quality"):
            values = out[key]
            out[key] = [None if v is None else v[:, :n] for v in values]
            if has_dn:
                out[f"dn_{key}"] = [None if v is None else v[:, n:] for v in values]
        for entry in out["reid"]:
            for key, value in entry.items():
                entry[key] = value[:, :n]
        if not out["reid"]:
            del out["reid"]
        return out


def layer_outputs(out: dict) -> list[dict]:
    """Decoder/model output -> one dict per layer in the criterion's layout: ``classification``,
    ``prediction``, ``quality`` over the N normal queries followed by the M DN queries (when present), plus
    ``id_logits`` / ``visibility`` / ``reid_feature`` with the re-ID branch."""
    layers = []
    for i in range(len(out["prediction"])):
        entry = {}
        for key in ("classification", "prediction", "quality"):
            value, dn = out[key][i], out.get(f"dn_{key}", [None] * (i + 1))[i]
            entry[key] = value if value is None or dn is None else torch.cat([value, dn], dim=1)
        if "reid" in out:
            entry.update(out["reid"][i])
        layers.append(entry)
    return layers
