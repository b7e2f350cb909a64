"""Sparse4D training criterion: matching + every loss term over all decoder layers (specs §2.1-2.3).

Per decoder layer ``l`` (outputs = N normal queries followed by Q DN queries):

- normal queries: Hungarian matching (:class:`.matcher.HungarianMatcher`), unmatched -> background label C;
  ``layer{l}_cls`` focal x 2.0; ``layer{l}_box`` 0.25 x weighted L1, ``layer{l}_cns`` centerness BCE and
  ``layer{l}_yns`` yawness Gaussian focal on matched queries whose max class probability > 0.05; all / num_pos
  (number of matched queries in the batch, mean over ranks, >= 1);
- DN queries (:mod:`.denoising` targets, per layer: the temporal ones from the bank update on): ``layer{l}_dn_cls``
  on valid (non-padding) DN queries, ``layer{l}_dn_box`` on the assigned ones, both / #valid DN queries; no
  quality terms and no ``dn_loss_weight`` (official and TAO apply neither);
- optional re-ID terms (TAO ``use_reid_sampling``): ``layer{l}_id`` label-smoothed CE of ``id_logits`` vs the
  matched GT's asset id, ``layer{l}_vis`` BCE of ``visibility`` vs the matched GT's per-camera visibility (0 for
  unmatched queries).

Plus ``depth`` (dense depth L1 x 0.2) when depth predictions and GT are given, and ``total`` = the sum of all
terms. A non-finite term raises :class:`NonFiniteLossError` naming it (one host sync for the whole check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from visionops.models.sparse4d import losses as lf
from visionops.models.sparse4d.box_state import CENTER, STATE_DIM, YAW
from visionops.models.sparse4d.denoising import DNTargets
from visionops.models.sparse4d.loss_config import Sparse4DLossConfig
from visionops.models.sparse4d.matcher import HungarianMatcher, gt_reg_weights


class NonFiniteLossError(FloatingPointError):
    """A loss term is NaN or infinite. ``term`` is its name (e.g. ``layer3_box``), ``layer`` the decoder layer
    (None for ``depth`` / ``total``), ``value`` the offending value."""

    def __init__(self, term: str, layer: int | None, value: float) -> None:
        self.term, self.layer, self.value = term, layer, value
        where = "" if layer is None else f" (decoder layer {layer})"
        super().__init__(f"Sparse4D loss term {term!r}{where} is {value}")


@dataclass
class CriterionOutput:
    """``losses``: named scalar terms plus ``total``; ``indices``: the last layer's per-sample matches
    ``(pred_idx, gt_idx)`` over the normal queries; ``num_pos``: (num_layers,) normaliser of each layer."""

    losses: dict[str, Tensor]
    indices: list[tuple[Tensor, Tensor]]
    num_pos: Tensor

    @property
    def total(self) -> Tensor:
        return self.losses["total"]


@dataclass
class _Assigned:
    """Targets of the N normal queries of one layer: labels (B, N) (C = background), boxes / weights (B, N, 11),
    gt_index (B, N) (-1 = unmatched)."""

    labels: Tensor
    boxes: Tensor
    weights: Tensor
    gt_index: Tensor


class Sparse4DCriterion(nn.Module):
    """All Sparse4D training losses.

    Args:
        num_classes: C (classification logits per query).
        config: constants; defaults = TAO (see :class:`~.loss_config.Sparse4DLossConfig`).
    """

    def __init__(self, num_classes: int, config: Sparse4DLossConfig | None = None) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.config = config or Sparse4DLossConfig()
        self.matcher = HungarianMatcher(self.config)
        # config constants, not state: a checkpoint must not override them
        self.register_buffer("reg_weights", torch.tensor(self.config.reg_weights, dtype=torch.float32),
                             persistent=False)

    def forward(self, outputs: Sequence[Mapping[str, Tensor | None]], gt_boxes: Sequence[Tensor],
                gt_labels: Sequence[Tensor], dn_targets: DNTargets | Sequence[DNTargets | None] | None = None,
                depth_preds: Sequence[Tensor] | None = None, gt_depths: Sequence[Tensor] | None = None,
                gt_asset_ids: Sequence[Tensor] | None = None,
                gt_visibility: Sequence[Tensor] | None = None,
                temporal_dn_targets: DNTargets | None = None) -> CriterionOutput:
        """Compute every term.

        Args:
            outputs: one dict per decoder layer with ``classification`` (B, N+Q, C) logits, ``prediction``
                (B, N+Q, 11) encoded boxes, ``quality`` (B, N+Q, 2) [centerness, yawness] logits or None, and
                optionally ``id_logits`` (B, >=N, num_ids) and ``visibility`` (B, >=N, Ncam) probabilities.
            gt_boxes: B tensors (M_b, 11) encoded GT (:func:`.box_state.encode_gt`; NaN dims are ignored).
            gt_labels: B tensors (M_b,) int64 in [0, C).
            dn_targets: None (no DN queries), one :class:`DNTargets` for every layer, or one entry per layer
                (e.g. ``[dn.targets] * num_single_frame_decoder + [temporal_targets] * rest``). Q is taken from it.
            temporal_dn_targets: shorthand for that split: with a single ``dn_targets``, the layers from
                ``config.num_single_frame_decoder`` on use these (from ``DenoisingGenerator.temporal_update``).
            depth_preds / gt_depths: per level (B*Ncam, 1, H_l, W_l) metres, for the dense depth term.
            gt_asset_ids: B tensors (M_b,) int64 global identities for ``id_logits``.
            gt_visibility: B tensors (M_b, Ncam) in [0, 1] for ``visibility``.
        """
        num_layers = len(outputs)
        if num_layers == 0:
            raise ValueError("Sparse4DCriterion needs the outputs of at least one decoder layer")
        bsz = len(gt_boxes)
        if len(gt_labels) != bsz:
            raise ValueError(f"{bsz} gt_boxes tensors but {len(gt_labels)} gt_labels tensors")
        dn_layers = self._dn_per_layer(dn_targets, num_layers)
        if temporal_dn_targets is not None:
            if not isinstance(dn_targets, DNTargets):
                raise ValueError("temporal_dn_targets needs a single DNTargets as dn_targets")
            first = self.config.num_single_frame_decoder
            dn_layers = dn_layers[:first] + [temporal_dn_targets] * (num_layers - first)
        device = outputs[0]["classification"].device

        assigned, matches, counts = [], [], []
        for out, dn in zip(outputs, dn_layers, strict=True):
            cls, pred = out["classification"], out["prediction"]
            if cls is None or pred is None or cls.shape[0] != bsz or cls.shape[-1] != self.num_classes:
                raise ValueError(f"each layer needs classification (B={bsz}, N, C={self.num_classes}) and "
                                 f"prediction logits, got {None if cls is None else tuple(cls.shape)}")
            n = cls.shape[1] - (0 if dn is None else dn.labels.shape[1])
            if n < 0 or (dn is not None and dn.labels.shape[0] != bsz):
                raise ValueError(f"DN targets {tuple(dn.labels.shape)} do not fit outputs {tuple(cls.shape)}")
            idx = self.matcher(cls[:, :n], pred[:, :n], gt_labels, gt_boxes)
            matches.append(idx)
            assigned.append(self._assign(idx, n, gt_boxes, gt_labels, device))
            counts += [sum(len(p) for p, _ in idx), 0 if dn is None else int(dn.valid.sum())]
        norms = lf.reduce_count(torch.tensor(counts, dtype=torch.float32, device=device),
                               self.config.sync_num_pos).view(num_layers, 2)

        losses: dict[str, Tensor] = {}
        layer_of: dict[str, int | None] = {}
        for layer, (out, tgt, dn, idx) in enumerate(zip(outputs, assigned, dn_layers, matches, strict=True)):
            terms = self._layer_terms(out, tgt, dn, norms[layer, 0], norms[layer, 1])
            terms.update(self._reid_terms(out, idx, tgt, gt_asset_ids, gt_visibility))
            for name, value in terms.items():
                losses[f"layer{layer}_{name}"] = value
                layer_of[f"layer{layer}_{name}"] = layer
        if depth_preds is not None and gt_depths is not None:
            cfg = self.config
            losses["depth"] = lf.dense_depth_loss(depth_preds, gt_depths, cfg.depth_max_m, cfg.depth_min_valid_m,
                                                 cfg.depth_weight)
        losses["total"] = torch.stack(list(losses.values())).sum()
        self._check_finite(losses, layer_of)
        return CriterionOutput(losses, matches[-1], norms[:, 0])

    @staticmethod
    def _dn_per_layer(dn_targets: DNTargets | Sequence[DNTargets | None] | None,
                      num_layers: int) -> list[DNTargets | None]:
        if dn_targets is None or isinstance(dn_targets, DNTargets):
            return [dn_targets] * num_layers
        if len(dn_targets) != num_layers:
            raise ValueError(f"got DN targets for {len(dn_targets)} layers, outputs for {num_layers}")
        return list(dn_targets)

    def _assign(self, idx: list[tuple[Tensor, Tensor]], n: int, gt_boxes: Sequence[Tensor],
                gt_labels: Sequence[Tensor], device: torch.device) -> _Assigned:
        bsz = len(idx)
        labels = torch.full((bsz, n), self.num_classes, dtype=torch.int64, device=device)
        boxes = torch.zeros(bsz, n, STATE_DIM, device=device)
        weights = torch.zeros(bsz, n, STATE_DIM, device=device)
        gt_index = torch.full((bsz, n), -1, dtype=torch.int64, device=device)
        for b, (p, g) in enumerate(idx):
            if len(p) == 0:
                continue
            box = gt_boxes[b].to(device, torch.float32)
            lab = gt_labels[b].to(device)
            w = gt_reg_weights(box, lab, self.config.class_reg_weights)
            labels[b, p] = lab[g]
            boxes[b, p] = torch.where(w[g] > 0, box[g], 0.0)  # NaN GT dims -> 0 (weight 0 anyway)
            weights[b, p] = w[g]
            gt_index[b, p] = g
        return _Assigned(labels, boxes, weights, gt_index)

    def _regression(self, pred: Tensor, target: Tensor, weights: Tensor, labels: Tensor, quality: Tensor | None,
                    norm: Tensor) -> dict[str, Tensor]:
        """Box (+ quality) terms of K selected queries: pred / target / weights (K, 11), labels (K,),
        quality (K, 2) or None."""
        cfg = self.config
        target = lf.flip_ambiguous_yaw(pred.detach(), target, labels, cfg.cls_allow_reverse)
        reg = self.reg_weights.to(pred.device)  # also right when the criterion was not moved with the model
        terms = {"box": cfg.box_weight * lf.weighted_l1_loss(pred, target, weights * reg) / norm}
        if quality is not None:
            cns = lf.centerness_loss(quality[:, 0], pred[:, CENTER], target[:, CENTER], cfg.quality_target_grad)
            yns = lf.yawness_loss(quality[:, 1], pred[:, YAW].detach(), target[:, YAW], cfg.yawness_alpha,
                                 cfg.yawness_gamma)
            yns_norm = pred.new_tensor(max(len(pred), 1), dtype=torch.float32) if cfg.yawness_mean else norm
            terms["cns"] = cfg.centerness_weight * cns / norm
            terms["yns"] = cfg.yawness_weight * yns / yns_norm
        return terms

    def _layer_terms(self, out: Mapping[str, Tensor | None], tgt: _Assigned, dn: DNTargets | None, norm: Tensor,
                     dn_norm: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        cls, pred, quality = out["classification"], out["prediction"][..., :STATE_DIM], out.get("quality")
        n = tgt.labels.shape[1]
        terms = {"cls": cfg.cls_weight * lf.sigmoid_focal_loss(cls[:, :n].flatten(0, 1), tgt.labels.flatten(),
                                                              cfg.focal_alpha, cfg.focal_gamma) / norm}
        # Box and quality only where the query already looks like an object (official cls_threshold_to_reg).
        confident = cls[:, :n].detach().float().amax(dim=-1).sigmoid() > cfg.cls_threshold_to_reg
        sel = (tgt.gt_index >= 0) & confident
        terms.update(self._regression(pred[:, :n][sel], tgt.boxes[sel], tgt.weights[sel], tgt.labels[sel],
                                      None if quality is None else quality[:, :n][sel], norm))
        if dn is not None:
            valid = dn.valid.to(cls.device)
            labels = dn.labels.to(cls.device)
            terms["dn_cls"] = cfg.cls_weight * lf.sigmoid_focal_loss(cls[:, n:][valid], labels[valid],
                                                                    cfg.focal_alpha, cfg.focal_gamma) / dn_norm
            pos = valid & (labels >= 0) & (labels < self.num_classes)
            box_w = dn.box_weights.to(pred.device)[pos] * self.reg_weights.to(pred.device)
            dn_box = lf.weighted_l1_loss(pred[:, n:][pos], dn.boxes.to(pred.device)[pos], box_w)
            terms["dn_box"] = cfg.box_weight * dn_box / dn_norm
        return terms

    def _reid_terms(self, out: Mapping[str, Tensor | None], idx: list[tuple[Tensor, Tensor]], tgt: _Assigned,
                    gt_asset_ids: Sequence[Tensor] | None,
                    gt_visibility: Sequence[Tensor] | None) -> dict[str, Tensor]:
        """``id`` / ``vis`` terms when the layer has ``id_logits`` / ``visibility`` and the GT has the field."""
        cfg, terms = self.config, {}
        n = tgt.labels.shape[1]
        id_logits, vis = out.get("id_logits"), out.get("visibility")
        if id_logits is not None and gt_asset_ids is not None:
            asset = torch.full_like(tgt.gt_index, -1)
            for b, (p, g) in enumerate(idx):
                asset[b, p] = gt_asset_ids[b].to(asset.device, torch.int64)[g]
            matched = tgt.gt_index >= 0
            terms["id"] = cfg.id_weight * lf.id_loss(id_logits[:, :n][matched], asset[matched],
                                                    cfg.id_label_smoothing)
        if vis is not None and gt_visibility is not None:
            target = torch.zeros(vis[:, :n].shape, device=vis.device)
            for b, (p, g) in enumerate(idx):
                target[b, p] = gt_visibility[b].to(vis.device, torch.float32)[g]
            terms["vis"] = cfg.visibility_weight * lf.visibility_loss(vis[:, :n], target)
        return terms

    @staticmethod
    def _check_finite(losses: dict[str, Tensor], layer_of: Mapping[str, int | None]) -> None:
        values = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
        if bool(torch.isfinite(values).all()):  # the one host sync of the check
            return
        for name, value in zip(losses, values.tolist(), strict=True):
            if not torch.isfinite(torch.tensor(value)):
                raise NonFiniteLossError(name, layer_of.get(name), value)
