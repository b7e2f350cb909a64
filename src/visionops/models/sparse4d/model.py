"""Sparse4D v3 (TAO variant): multi-camera 3D detection and tracking with a temporal instance bank.

    images (B, Ncam, 3, H, W) --ResNet--> C2..C5 --FPN--> L levels (B, Ncam, C, H_l, W_l)
                                                            |-- DenseDepthNet (training only)
    instance bank (anchors + previous frame's cache) --> decoder (DFA / attention / FFN / refinement x layers)
        --> per-layer classification, box state, quality --> bank.cache (+ instance ids in eval)

Images are expected RGB, ImageNet-normalised, at the config's input size (GridMask, when used, is applied by
the training module before the forward). The temporal state lives in the instance bank as plain Python
attributes: a forward call depends on the previous call for the same stream. Call :meth:`Sparse4D.reset`
between independent streams (scene and batch-size changes are detected automatically).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from visionops.models.backbones.resnet import ResNet, build_resnet
from visionops.models.necks.fpn import FPN
from visionops.models.sparse4d.decoder import DenoisingQueries, Sparse4DDecoder
from visionops.models.sparse4d.depth_head import DenseDepthNet
from visionops.models.sparse4d.instance_bank import InstanceBank
from visionops.models.sparse4d.presets import DEFAULT, Sparse4DConfig


class Sparse4D(nn.Module):
    """The whole network.

    Args:
        cfg: architecture (default: the small CPU preset; ``presets.FULL_R101`` for the card's model).
        anchors: (num_anchor, 11) initial anchors (k-means priors); None = a placeholder lattice.
    """

    def __init__(self, cfg: Sparse4DConfig = DEFAULT, anchors: Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone: ResNet = build_resnet(cfg.backbone, out_indices=tuple(range(1, cfg.num_levels + 1)),
                                             frozen_stages=cfg.frozen_stages, norm_eval=cfg.norm_eval)
        self.neck = FPN(cfg.backbone_channels, cfg.fpn_out_channels, num_outs=cfg.num_levels)
        self.depth_head = DenseDepthNet(cfg.embed_dims, cfg.num_depth_layers, cfg.equal_focal, cfg.max_depth) \
            if cfg.use_depth_head else None
        self.instance_bank = InstanceBank(
            cfg.num_anchor, cfg.embed_dims, anchors, cfg.num_temp_instances, cfg.confidence_decay,
            cfg.default_time_interval, cfg.max_time_interval, cfg.feat_grad)
        self.decoder = Sparse4DDecoder(cfg)

    def reset(self, restart_ids: bool = False) -> None:
        """Forget the temporal state; ``restart_ids`` also restarts instance ids at 0 (independent runs)."""
        if restart_ids:
            self.instance_bank.reset_ids()
        else:
            self.instance_bank.reset()

    def extract_features(self, images: Tensor) -> list[Tensor]:
        """(B, Ncam, 3, H, W) -> L FPN levels (B, Ncam, C, H_l, W_l) (cameras share the batch axis inside)."""
        b, k = images.shape[:2]
        x = images.flatten(0, 1)
        if self.cfg.grad_checkpoint and self.training and torch.is_grad_enabled():
            net = self.backbone
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            stages = []
            for i in range(1, self.cfg.num_levels + 1):
                x = checkpoint(getattr(net, f"layer{i}"), x, use_reentrant=False)
                stages.append(x)
        else:
            stages = self.backbone(x)
        return [level.unflatten(0, (b, k)) for level in self.neck(stages)]

    def forward(
        self,
        images: Tensor,
        projection_mat: Tensor,
        image_wh: Tensor | None = None,
        timestamp: Tensor | None = None,
        scene_ids: Sequence[Hashable] | Tensor | None = None,
        focal: Tensor | None = None,
        dn: DenoisingQueries | None = None,
        global_transform: Tensor | None = None,
    ) -> dict:
        """One frame of a batch of streams.

        Args:
            images: (B, Ncam, 3, H, W) normalised RGB.
            projection_mat: (B, Ncam, 4, 4) world->pixel of the network input (augmentation folded in).
            image_wh: (B, Ncam, 2) [W, H] pixels; None = the image tensor's size.
            timestamp: (B,) seconds; None = a cold start every call (no temporal cache).
            scene_ids: one scene/sequence id per sample; a change invalidates that sample's cache.
            focal: (B, Ncam) fx (pixels) of the network-input intrinsics, for the depth head.
            dn: denoising queries (training).
            global_transform: (B, 4, 4) ego->global; None for static cameras (identity frame change).

        Returns:
            dict: ``classification`` / ``prediction`` / ``quality``: one entry per decoder layer, (B, N, C_cls)
            logits / (B, N, 11) box states / (B, N, 2) [centerness, yawness] logits (None for the middle
            layers in eval); ``instance_feature`` (B, N, C) and ``anchor`` (B, N, 11) of the last layer;
            ``time_interval`` (B,) s; ``depth`` (training, depth head on): per level (B * Ncam, 1, H_l, W_l) metres;
            ``instance_ids`` (eval): (B, N) int64, -1 = untracked; ``dn_*`` with denoising queries; ``reid``
            with the re-ID branch.
        """
        b, k = images.shape[:2]
        if image_wh is None:
            image_wh = images.new_tensor([images.shape[-1], images.shape[-2]]).expand(b, k, 2)
        features = self.extract_features(images)
        out: dict = {}
        if self.training and self.depth_head is not None:
            out["depth"] = self.depth_head(features, focal)
        if timestamp is None:
            self.instance_bank.reset()
            timestamp = torch.zeros(b, dtype=torch.float64)
        frame = self.instance_bank.get(b, timestamp, scene_ids, global_transform)
        out.update(self.decoder(features, projection_mat, image_wh, frame, self.instance_bank, dn))
        out["time_interval"] = frame.time_interval
        ids = self.instance_bank.cache(out["instance_feature"], out["anchor"], out["classification"][-1],
                                       track=not self.training, id_threshold=self.cfg.score_threshold)
        if ids is not None:
            out["instance_ids"] = ids
        return out
