"""Deformable feature aggregation (DFA), pure PyTorch: key points -> image features fused over cams/levels/points.

For each instance (B, N) the 13 key points of its box are projected into every camera, bilinearly sampled
from every FPN level, and summed with learned weights:

    out[b, n, g] = sum_cam sum_level sum_point w[b, n, cam, level, point, g] * F_{cam, level}[g](uv[b, cam, n, p])

(g = channel group of C / G channels). The weights come from ``weights_fc(instance + anchor_embed [+ cam
embedding])``, softmaxed **jointly over (cam, level, point) per group**. Conventions of the CUDA op we match:

* bilinear with ``align_corners=False`` (pixel = u * W_l - 0.5), zero outside the map;
* a sample is *skipped* unless ``0 < u < 1`` and ``0 < v < 1`` (strict). grid_sample alone would still give
  partial values up to half a pixel outside, so weights are multiplied by that mask, and masked (or NaN)
  locations are moved far outside the map so grid_sample returns exact zeros (no NaN * 0 = NaN);
* points behind a camera are not tested separately (z is clamped to 1e-5 as in the official projection).

Levels are sampled and accumulated one at a time: peak memory is one level's samples
(B * Ncam, C, N, P) instead of all L levels stacked (the official fallback's (B, N, Ncam, L, P, C), ~0.6 GB per
layer for 900 queries x 12 cams). :func:`aggregate_stacked` keeps the stacked form as a reference for tests.
Everything is cat/einsum/where: the module exports to ONNX (opset >= 16 for GridSample) without custom ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from visionops.models.sparse4d.camera_embedding import CameraEmbedding
from visionops.models.sparse4d.keypoints import FIX_SCALE_045, SparseBox3DKeyPointsGenerator

_OUTSIDE = -4.0
"""grid_sample coordinate (in [-1, 1] units) that lies well outside any map: gives exact zeros."""


def project_points(key_points: Tensor, projection_mat: Tensor, image_wh: Tensor) -> Tensor:
    """World points -> normalised image coordinates.

    Args:
        key_points: (B, N, P, 3) metres.
        projection_mat: (B, Ncam, 4, 4) world->pixel.
        image_wh: (B, Ncam, 2) input [W, H] pixels.

    Returns:
        (B, Ncam, N, P, 2) (u, v), in (0, 1) inside the image.
    """
    homo = torch.cat([key_points, torch.ones_like(key_points[..., :1])], dim=-1)  # (B, N, P, 4)
    pts = torch.einsum("bkij,bnpj->bknpi", projection_mat[..., :3, :], homo)  # (B, Ncam, N, P, 3)
    uv = pts[..., :2] / pts[..., 2:3].clamp(min=1e-5)
    return uv / image_wh[:, :, None, None]


def inside_mask(uv: Tensor) -> Tensor:
    """(..., 2) normalised coordinates -> (...) bool, strictly inside (0, 1) x (0, 1) (False for NaN)."""
    return (uv > 0).all(dim=-1) & (uv < 1).all(dim=-1)


def _grid(uv: Tensor, valid: Tensor) -> Tensor:
    """(B, Ncam, N, P, 2) -> grid_sample grid (B * Ncam, N, P, 2) in [-1, 1], invalid points far outside."""
    grid = torch.where(valid[..., None], uv * 2 - 1, torch.full_like(uv, _OUTSIDE))
    return grid.flatten(0, 1)


def aggregate(feature_maps: Sequence[Tensor], uv: Tensor, weights: Tensor) -> Tensor:
    """Level-by-level weighted sampling (bounded memory).

    Args:
        feature_maps: L tensors (B, Ncam, C, H_l, W_l).
        uv: (B, Ncam, N, P, 2) normalised sampling locations.
        weights: (B, N, Ncam, L, P, G); locations outside (0, 1) are masked here.

    Returns:
        (B, N, C) with channel index g * (C / G) + c.
    """
    b, k, c = feature_maps[0].shape[:3]
    n, p, g = uv.shape[2], uv.shape[3], weights.shape[-1]
    valid = inside_mask(uv)  # (B, Ncam, N, P)
    grid = _grid(uv, valid)
    # (B, Ncam, L, G, N, P), invalid samples weigh 0 (the CUDA op skips them).
    w = weights.permute(0, 2, 3, 5, 1, 4) * valid[:, :, None, None].to(weights.dtype)
    out = None
    for level, fm in enumerate(feature_maps):
        sampled = F.grid_sample(fm.flatten(0, 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled.reshape(b, k, g, c // g, n, p)
        term = torch.einsum("bkgcnp,bkgnp->bngc", sampled, w[:, :, level])
        out = term if out is None else out + term
    return out.reshape(b, n, c)


def aggregate_stacked(feature_maps: Sequence[Tensor], uv: Tensor, weights: Tensor) -> Tensor:
    """Same as :func:`aggregate` with all levels stacked first (the official fallback's memory profile)."""
    b, k, c = feature_maps[0].shape[:3]
    n, p, g = uv.shape[2], uv.shape[3], weights.shape[-1]
    valid = inside_mask(uv)
    grid = _grid(uv, valid)
    sampled = torch.stack(
        [F.grid_sample(fm.flatten(0, 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
         for fm in feature_maps], dim=1)  # (B * Ncam, L, C, N, P)
    sampled = sampled.reshape(b, k, len(feature_maps), g, c // g, n, p)
    w = weights.permute(0, 2, 3, 5, 1, 4) * valid[:, :, None, None].to(weights.dtype)
    return torch.einsum("bklgcnp,bklgnp->bngc", sampled, w).reshape(b, n, c)


def aggregate_per_camera(feature_maps: Sequence[Tensor], uv: Tensor, weights: Tensor) -> Tensor:
    """Re-ID sampling: like :func:`aggregate` but the camera axis is kept, (B, N, Ncam, C).

    Levels are fused with the same attention weights and the given points summed (TAO's re-ID branch passes
    the learnable points only).
    """
    b, k, c = feature_maps[0].shape[:3]
    n, p, g = uv.shape[2], uv.shape[3], weights.shape[-1]
    valid = inside_mask(uv)
    grid = _grid(uv, valid)
    w = weights.permute(0, 2, 3, 5, 1, 4) * valid[:, :, None, None].to(weights.dtype)
    out = None
    for level, fm in enumerate(feature_maps):
        sampled = F.grid_sample(fm.flatten(0, 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        term = torch.einsum("bkgcnp,bkgnp->bnkgc", sampled.reshape(b, k, g, c // g, n, p), w[:, :, level])
        out = term if out is None else out + term
    return out.reshape(b, n, k, c)


class DeformableFeatureAggregation(nn.Module):
    """Sparse4D DFA block (one per ``deformable`` op of the decoder).

    Args:
        embed_dims: C (divisible by ``num_groups``).
        num_groups: G, channel groups with their own weights (the card: 8).
        num_levels: L, FPN levels sampled (the card: 4).
        num_learnable_pts / fix_scale: key points (the card: 6 + 7 at 0.45).
        attn_drop: train-time dropout of whole (camera, point) samples, rescaled by 1 / (1 - p) (the card: 0.15).
        use_camera_embed: geometry-based camera embedding (ours). False = TAO's slot-based weights for up to
            ``max_num_cams`` cameras (camera order matters; kept for parameter-count comparisons).
        camera_translation_scale: see :mod:`.camera_embedding`.
        residual_mode: "cat" -> output (B, N, 2C) = [aggregated, instance_feature] (feeds the AsymmetricFFN);
            "add" -> (B, N, C).
        proj_drop: dropout after ``output_proj`` (the card: 0).
    """

    def __init__(
        self,
        embed_dims: int = 256,
        num_groups: int = 8,
        num_levels: int = 4,
        num_learnable_pts: int = 6,
        fix_scale: Sequence[Sequence[float]] = FIX_SCALE_045,
        attn_drop: float = 0.15,
        use_camera_embed: bool = True,
        max_num_cams: int = 20,
        camera_translation_scale: float = 10.0,
        residual_mode: str = "cat",
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if embed_dims % num_groups:
            raise ValueError(f"embed_dims ({embed_dims}) must be divisible by num_groups ({num_groups})")
        if residual_mode not in ("cat", "add"):
            raise ValueError(f"residual_mode must be 'cat' or 'add', got {residual_mode!r}")
        self.embed_dims, self.num_groups, self.num_levels = embed_dims, num_groups, num_levels
        self.attn_drop, self.residual_mode, self.max_num_cams = attn_drop, residual_mode, max_num_cams
        self.kps_generator = SparseBox3DKeyPointsGenerator(embed_dims, num_learnable_pts, fix_scale)
        self.num_pts = self.kps_generator.num_pts
        self.num_learnable_pts = num_learnable_pts
        per_cam = num_groups * num_levels * self.num_pts
        self.camera_encoder = CameraEmbedding(embed_dims, camera_translation_scale) if use_camera_embed else None
        self.weights_fc = nn.Linear(embed_dims, per_cam if use_camera_embed else per_cam * max_num_cams)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        for m in self.modules():  # the head's Xavier init; weights_fc zero -> uniform weights at the start
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(self.weights_fc.weight)
        nn.init.zeros_(self.weights_fc.bias)
        nn.init.zeros_(self.output_proj.bias)

    def attention_weights(self, instance_feature: Tensor, anchor_embed: Tensor, projection_mat: Tensor,
                          image_wh: Tensor) -> Tensor:
        """(B, N, C) x2 + cameras -> weights (B, N, Ncam, L, P, G), summing to 1 over (Ncam, L, P) per group."""
        b, n = instance_feature.shape[:2]
        k = projection_mat.shape[1]
        feature = instance_feature + anchor_embed
        if self.camera_encoder is not None:
            cam = self.camera_encoder(projection_mat, image_wh)  # (B, Ncam, C)
            logits = self.weights_fc(feature[:, :, None] + cam[:, None])  # (B, N, Ncam, L * P * G)
        else:
            if k > self.max_num_cams:
                raise ValueError(f"slot-based weights support at most {self.max_num_cams} cameras, got {k}")
            logits = self.weights_fc(feature)[..., : k * self.num_levels * self.num_pts * self.num_groups]
        weights = logits.reshape(b, n, -1, self.num_groups).softmax(dim=-2)
        weights = weights.reshape(b, n, k, self.num_levels, self.num_pts, self.num_groups)
        if self.training and self.attn_drop > 0:
            keep = torch.rand(b, n, k, 1, self.num_pts, 1, device=weights.device) > self.attn_drop
            weights = weights * keep.to(weights.dtype) / (1 - self.attn_drop)
        return weights

    def forward(
        self,
        instance_feature: Tensor,
        anchor: Tensor,
        anchor_embed: Tensor,
        feature_maps: Sequence[Tensor],
        projection_mat: Tensor,
        image_wh: Tensor,
        return_per_camera: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Aggregate image features for every instance.

        Args:
            instance_feature: (B, N, C).
            anchor: (B, N, 11) box state (metres, log metres, sin/cos, m/s).
            anchor_embed: (B, N, C) from the anchor encoder.
            feature_maps: L tensors (B, Ncam, C, H_l, W_l), finest first.
            projection_mat: (B, Ncam, 4, 4) world->pixel, augmentation included.
            image_wh: (B, Ncam, 2) input [W, H] pixels.
            return_per_camera: also return the re-ID features (B, N, Ncam, C) of the learnable points.

        Returns:
            (B, N, 2C) with residual "cat" (B, N, C) with "add"; plus the re-ID features when asked.
        """
        if len(feature_maps) != self.num_levels:
            raise ValueError(f"DFA built for {self.num_levels} levels, got {len(feature_maps)} feature maps")
        key_points = self.kps_generator(anchor, instance_feature)  # (B, N, P, 3)
        weights = self.attention_weights(instance_feature, anchor_embed, projection_mat, image_wh)
        uv = project_points(key_points, projection_mat, image_wh)  # (B, Ncam, N, P, 2)
        # The op works in fp32 (as the CUDA kernel): softmax sums and bilinear weights lose too much in fp16.
        maps = [fm.float() for fm in feature_maps]
        features = aggregate(maps, uv.float(), weights.float()).to(instance_feature.dtype)
        output = self.proj_drop(self.output_proj(features))
        output = torch.cat([output, instance_feature], dim=-1) if self.residual_mode == "cat" \
            else output + instance_feature
        if not return_per_camera:
            return output
        learn = slice(self.num_pts - self.num_learnable_pts, self.num_pts)
        per_cam = aggregate_per_camera(maps, uv[:, :, :, learn].float(), weights[:, :, :, :, learn].float())
        return output, per_cam.to(instance_feature.dtype)
