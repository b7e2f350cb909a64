"""Lightning module of Sparse4D: streaming training (one frame per stream and step) and streaming validation.

Batch (from the Sparse4D dataset + sequence sampler; B streams, K cameras)::

    images (B, K, 3, H, W) float32 ImageNet-normalised    projection_mat (B, K, 4, 4) world->pixel
    image_wh (B, K, 2) [W, H]    focal (B, K) px    timestamp (B,) float64 s    scene_ids list[str]
    gt_boxes B x (M_b, 11) encoded    gt_labels / gt_ids B x (M_b,) int64    gt_visibility B x (M_b, K)
    gt_depth (B, K, H, W) metres (0 = none) or None    cameras, meta (passed through)

Training step: GridMask -> DN queries (+ the temporal DN groups of the previous step, swapped in after the
bank update) -> network -> criterion over every decoder layer + dense depth -> AdamW. The instance bank and the
DN cache persist between steps (detached, no BPTT), so each stream trains on "previous-frame" instances its own
model produced; a changed ``scene_ids`` entry invalidates that stream's cache. A non-finite loss term raises
:class:`NonFiniteLossError` naming the term and decoder layer (see :func:`.sparse4d_fit.fit_sparse4d`).

Validation streams the val split in eval mode (ids assigned) and logs ``val/loss`` (layers with outputs in eval:
the single-frame and the last one, no DN, no depth), ``val/recall_2m``, ``val/precision_2m`` (class-aware
one-to-one matches of reported boxes within 2 m of a GT centre) and ``val/centre_error_m`` of those matches.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from visionops.models.sparse4d.box_state import decode
from visionops.models.sparse4d.criterion import NonFiniteLossError, Sparse4DCriterion
from visionops.models.sparse4d.decoder import DenoisingQueries, layer_outputs
from visionops.models.sparse4d.denoising import DenoisingGenerator
from visionops.models.sparse4d.instance_bank import project_anchors
from visionops.models.sparse4d.loss_config import Sparse4DLossConfig
from visionops.models.sparse4d.model import Sparse4D
from visionops.models.sparse4d.postprocess import SparseBox3DDecoder
from visionops.models.sparse4d.presets import Sparse4DConfig

WARMUP_START = 1 / 3  # official/TAO LinearLR start factor
COSINE_END = 1e-3  # cosine annealing down to lr * this (official min_lr_ratio)
MATCH_RADIUS_M = 2.0


def config_to_dict(cfg: Sparse4DConfig) -> dict[str, Any]:
    """Sparse4DConfig -> plain dict of lists / numbers / strings (loadable with ``weights_only=True``)."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, list | tuple) else v
    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(data: dict[str, Any]) -> Sparse4DConfig:
    """Inverse of :func:`config_to_dict` (lists back to the dataclass's tuples)."""
    def tup(v: Any) -> Any:
        return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v
    return Sparse4DConfig(**{k: tup(v) for k, v in data.items()})


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """LR factor at optimizer step ``step``: linear WARMUP_START -> 1 over ``warmup_steps``, then cosine from 1
    to COSINE_END at ``total_steps`` (held there afterwards)."""
    if step < warmup_steps:
        return WARMUP_START + (1 - WARMUP_START) * step / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return COSINE_END + (1 - COSINE_END) * 0.5 * (1 + math.cos(math.pi * progress))


def grid_mask(images: Tensor, generator: torch.Generator, prob: float = 0.7, ratio: float = 0.5) -> Tensor:
    """GridMask (official: use_h, use_w, rotate 1 = no rotation, mode 1, ratio 0.5, prob 0.7): with ``prob``,
    zero a lattice of squares (period d ~ U[2, H), side d - l, l = ratio * d) in every image of (B, K, 3, H, W).
    One mask for the whole batch, as the official code. Zero = the mean colour of normalised images."""
    if float(torch.rand((), generator=generator)) >= prob:
        return images
    h, w = images.shape[-2:]
    d = int(torch.randint(2, max(h, 3), (), generator=generator))
    keep = min(max(int(d * ratio + 0.5), 1), d - 1)  # stripe width kept; the squares between are dropped
    start_h, start_w = (int(torch.randint(0, d, (), generator=generator)) for _ in range(2))
    rows = ((torch.arange(h) - start_h) % d) < keep
    cols = ((torch.arange(w) - start_w) % d) < keep
    mask = (rows[:, None] | cols[None, :]).to(images.dtype).to(images.device)
    return images * mask


def depth_targets(gt_depth: Tensor, sizes: list[tuple[int, int]]) -> list[Tensor]:
    """(B, K, H, W) metres (0 = no depth) -> per level (B*K, H_l, W_l): the *nearest* valid depth in each cell
    (min-pooling; TAO zooms bilinearly, which blends fore- and background at object edges); 0 where empty."""
    d = gt_depth.flatten(0, 1)[:, None].float()
    d = torch.where(d > 0, d, torch.full_like(d, math.inf))
    levels = []
    for size in sizes:
        pooled = -F.adaptive_max_pool2d(-d, size)
        levels.append(torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))[:, 0])
    return levels


def match_centres(pred: np.ndarray, pred_labels: np.ndarray, gt: np.ndarray, gt_labels: np.ndarray,
                  radius: float = MATCH_RADIUS_M) -> np.ndarray:
    """One-to-one same-class matches within ``radius`` (m) between (P, 3) and (G, 3) centres -> distances."""
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415

    if len(pred) == 0 or len(gt) == 0:
        return np.zeros(0)
    dist = np.linalg.norm(pred[:, None] - gt[None], axis=-1)
    cost = np.where((pred_labels[:, None] == gt_labels[None]) & (dist <= radius), dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return dist[rows, cols][cost[rows, cols] < 1e6]


class Sparse4DModule(L.LightningModule):
    """Sparse4D training and validation.

    Args:
        model_config: the architecture (a :class:`Sparse4DConfig` or its :func:`config_to_dict` form).
        lr: peak AdamW learning rate of everything but the backbone; backbone_lr_mult: backbone lr factor.
        weight_decay: AdamW decay (every parameter, as both repos). warmup_steps: linear warm-up steps.
        total_steps: optimizer steps of the run (schedule length); None = the trainer's estimate.
        eval_threshold: min detection score for validation metrics and preview images.
        anchors: (num_anchor, 11) k-means anchor priors (None = the bank's placeholder lattice).
        meta: extra plain-typed entries for the checkpoint (e.g. the BEV handling, data digests).
        seed: seeds GridMask and DN draws (offset by the rank).
    """

    def __init__(self, model_config: Sparse4DConfig | dict, lr: float = 2e-4, backbone_lr_mult: float = 0.25,
                 weight_decay: float = 1e-3, warmup_steps: int = 50, total_steps: int | None = None,
                 eval_threshold: float = 0.2, anchors: Tensor | np.ndarray | None = None,
                 meta: dict[str, Any] | None = None, seed: int = 0) -> None:
        super().__init__()
        cfg = model_config if isinstance(model_config, Sparse4DConfig) else config_from_dict(model_config)
        self.cfg = cfg
        self.save_hyperparameters({
            "model": config_to_dict(cfg), "lr": float(lr), "backbone_lr_mult": float(backbone_lr_mult),
            "weight_decay": float(weight_decay), "warmup_steps": int(warmup_steps),
            "total_steps": None if total_steps is None else int(total_steps), "eval_threshold": float(eval_threshold),
            "seed": int(seed), "meta": {"classes": list(cfg.class_names), "input_size": list(cfg.input_size),
                                        **(meta or {})}})
        self.model = Sparse4D(cfg, None if anchors is None else torch.as_tensor(anchors, dtype=torch.float32))
        loss_cfg = Sparse4DLossConfig(
            cls_threshold_to_reg=cfg.cls_threshold_to_reg, depth_weight=cfg.depth_loss_weight,
            depth_max_m=cfg.max_depth, num_dn_groups=cfg.num_dn_groups, num_temp_dn_groups=cfg.num_temp_dn_groups,
            max_dn_gt=cfg.max_dn_gt, dn_noise_scale=tuple(cfg.dn_noise_scale),
            num_single_frame_decoder=cfg.num_single_frame_decoder)
        self.criterion = Sparse4DCriterion(cfg.num_classes, loss_cfg)
        # validation ranks may see different frame counts: no collective inside the val loss
        self.val_criterion = Sparse4DCriterion(cfg.num_classes, dataclasses.replace(loss_cfg, sync_num_pos=False))
        self.denoising = DenoisingGenerator(loss_cfg)
        self.decoder = SparseBox3DDecoder(cfg.num_output, cfg.score_threshold)
        self._rng: torch.Generator | None = None
        self._last_timestamp: Tensor | None = None
        self._val: Tensor = torch.zeros(6, dtype=torch.float64)
        self.preview: dict[str, Any] | None = None  # one validation frame for the per-epoch image
        self.last_metrics: dict[str, float] = {}
        self.last_losses: dict[str, Tensor] = {}

    # -- helpers -------------------------------------------------------------------------------------
    @property
    def rng(self) -> torch.Generator:
        if self._rng is None:  # created lazily: the rank is known only once the trainer is attached
            self._rng = torch.Generator().manual_seed(self.hparams.seed * 1000 + self.global_rank)
        return self._rng

    def reset_streams(self) -> None:
        """Forget the bank, the DN cache and the stream timestamps (new epoch, train <-> val switch)."""
        self.model.reset()
        self.denoising.reset()
        self._last_timestamp = None

    def _gt(self, batch: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        d = self.device
        return ([b.to(d, torch.float32) for b in batch["gt_boxes"]], [x.to(d, torch.int64) for x in batch["gt_labels"]],
                [x.to(d, torch.int64) for x in batch["gt_ids"]])

    def _denoising(self, gt_boxes: list[Tensor], gt_labels: list[Tensor], gt_ids: list[Tensor],
                   timestamp: Tensor) -> tuple[DenoisingQueries | None, Any, dict]:
        """DN queries of this step, their targets and a holder the temporal targets are written into."""
        dnq = self.denoising.generate(gt_boxes, gt_labels, gt_ids, generator=self.rng)
        holder: dict = {}
        if dnq is None:
            self.denoising.reset()
            return None, None, holder
        last = self._last_timestamp
        if self.denoising.cached is not None and last is not None and last.shape == timestamp.shape:
            dt = (timestamp.cpu() - last).float().to(self.device)  # move cached DN boxes like the bank's
            self.denoising.project_cache(lambda a: project_anchors(a, dt))

        def on_update(feature: Tensor, anchor: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
            f, a, holder["targets"] = self.denoising.temporal_update(feature, anchor, dnq.targets, gt_boxes,
                                                                     gt_labels, gt_ids, valid)
            return f, a

        return DenoisingQueries(dnq.anchors, dnq.attn_mask, on_update=on_update), dnq.targets, holder

    # -- training ------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.reset_streams()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        images = batch["images"]
        if self.cfg.use_grid_mask:
            images = grid_mask(images, self.rng)
        gt_boxes, gt_labels, gt_ids = self._gt(batch)
        timestamp = torch.as_tensor(batch["timestamp"], dtype=torch.float64)
        dn, dn_targets, holder = self._denoising(gt_boxes, gt_labels, gt_ids, timestamp)
        out = self.model(images, batch["projection_mat"], batch["image_wh"], timestamp, batch["scene_ids"],
                         batch.get("focal"), dn=dn)
        self._last_timestamp = timestamp.cpu()
        depth_preds, depth_gts = out.get("depth"), None
        if depth_preds is not None and batch.get("gt_depth") is not None:
            depth_gts = depth_targets(batch["gt_depth"].to(self.device), [p.shape[-2:] for p in depth_preds])
        temporal = holder.get("targets", dn_targets)
        try:
            with torch.autocast(self.device.type, enabled=False):  # matching and losses in fp32
                result = self.criterion(layer_outputs(out), gt_boxes, gt_labels, dn_targets, depth_preds, depth_gts,
                                        gt_asset_ids=gt_ids if self.cfg.use_reid else None,
                                        gt_visibility=batch.get("gt_visibility") if self.cfg.use_reid else None,
                                        temporal_dn_targets=temporal if dn_targets is not None else None)
        except NonFiniteLossError as err:
            err.step = self.global_step
            err.args = (f"{err.args[0]} at training step {self.global_step}",)
            raise
        if dn_targets is not None:
            self.denoising.cache(out["dn_instance_feature"], out["dn_anchor"], temporal, generator=self.rng)
        self.last_losses = {k: v.detach() for k, v in result.losses.items()}
        if self._trainer is not None:  # also callable without a trainer (unit tests, custom loops)
            bsz = len(gt_boxes)
            self.log_dict({f"train/{k}": v.detach() for k, v in result.losses.items()}, on_step=True,
                          on_epoch=False, batch_size=bsz)
            self.log("train/loss", result.total.detach(), on_step=False, on_epoch=True, prog_bar=True,
                     batch_size=bsz)
            groups = self.optimizers().param_groups
            self.log_dict({"train/lr": groups[0]["lr"], "train/lr_backbone": groups[-1]["lr"]}, on_step=True,
                          on_epoch=False, batch_size=bsz)
        return result.total

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        self.log("train/grad_norm", norm, on_step=True, on_epoch=False)  # before clipping: shows explosions
        # fp16's scaler skips inf steps by itself; otherwise a NaN gradient would poison every weight
        if self.trainer.precision != "16-mixed" and not bool(torch.isfinite(norm)):
            raise NonFiniteLossError("grad_norm", None, float(norm))

    def configure_optimizers(self):
        hp = self.hparams
        backbone = [p for p in self.model.backbone.parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        head = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        optimizer = torch.optim.AdamW([{"params": head, "lr": hp.lr, "name": "head"},
                                       {"params": backbone, "lr": hp.lr * hp.backbone_lr_mult, "name": "backbone"}],
                                      lr=hp.lr, weight_decay=hp.weight_decay,
                                      foreach=True)  # torch's CPU default is a per-tensor loop, ~6x slower
        total = hp.total_steps or int(self.trainer.estimated_stepping_batches)
        warmup = min(hp.warmup_steps, max(total - 1, 0))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- validation ----------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.reset_streams()
        self._val = torch.zeros(6, dtype=torch.float64)  # loss sum, frames, matched, gt, detections, error sum
        self.preview = None

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        gt_boxes, gt_labels, _ = self._gt(batch)
        out = self.model(batch["images"], batch["projection_mat"], batch["image_wh"],
                         torch.as_tensor(batch["timestamp"], dtype=torch.float64), batch["scene_ids"])
        layers = [layer for layer in layer_outputs(out) if layer["classification"] is not None]
        try:
            loss = float(self.val_criterion(layers, gt_boxes, gt_labels).total)
        except NonFiniteLossError:
            loss = math.nan
        dets = self.decoder.from_outputs(out)
        stats = [loss * len(gt_boxes), len(gt_boxes), 0.0, 0.0, 0.0, 0.0]
        for det, box, label in zip(dets, gt_boxes, gt_labels, strict=True):
            keep = det["scores_3d"] >= self.hparams.eval_threshold
            dist = match_centres(det["boxes_3d"][keep, :3].cpu().numpy(), det["labels_3d"][keep].cpu().numpy(),
                                 box[:, :3].cpu().numpy(), label.cpu().numpy())
            stats[2:] = [stats[2] + len(dist), stats[3] + len(box), stats[4] + int(keep.sum()), stats[5] + dist.sum()]
        self._val += torch.tensor(stats, dtype=torch.float64)
        if self.preview is None:  # the first validation frame of stream 0, drawn at the epoch end
            keep = dets[0]["scores_3d"] >= self.hparams.eval_threshold
            meta = (batch.get("meta") or [{}])[0]
            self.preview = {
                "images": batch["images"][0].float().cpu(), "projection_mat": batch["projection_mat"][0].cpu(),
                "pred": dets[0]["boxes_3d"][keep].cpu(), "pred_labels": dets[0]["labels_3d"][keep].cpu(),
                "gt": decode(gt_boxes[0]).cpu(), "gt_labels": gt_labels[0].cpu(),
                "title": f"{meta.get('scene_name', batch['scene_ids'][0])} frame {meta.get('frame_idx', '?')}"}

    def on_validation_epoch_end(self) -> None:
        totals = self.trainer.strategy.reduce(self._val.to(self.device, torch.float32), reduce_op="sum").double()
        loss, frames, matched, gts, detections, error = totals.tolist()
        metrics = {"val/loss": loss / max(frames, 1), "val/recall_2m": matched / max(gts, 1),
                   "val/precision_2m": matched / max(detections, 1),
                   "val/centre_error_m": error / matched if matched else MATCH_RADIUS_M}
        self.log_dict(metrics, prog_bar=True, rank_zero_only=True)
        self.last_metrics = metrics
        self.reset_streams()
