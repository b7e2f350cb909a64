"""Optional re-ID branch (TAO's ``use_reid_sampling``; off by default, not used to assign ids).

Per DFA layer the learnable key points are sampled per camera (levels fused with the DFA's attention
weights, points summed -> (B, N, Ncam, C), see ``aggregate_per_camera``). Then:

* :class:`VisibilityNet`: Conv1d(C -> hidden, k=1) -> ReLU -> Conv1d(hidden -> 1, k=1) -> Sigmoid over the
  camera axis -> (B, N, Ncam) visibility scores (trained against GT per-camera visibility);
* the camera features are averaged with softmax(visibility) over cameras -> (B, N, C);
* :class:`BNNeck`: BatchNorm1d(C) with a frozen (zero) bias -> re-ID feature; Linear(C -> num_ids, no bias,
  Kaiming fan-out) -> identity logits for the label-smoothed cross-entropy.

Both modules are shared by all decoder layers (head-level, as in TAO).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VisibilityNet(nn.Module):
    """(B, N, Ncam, C) per-camera features -> (B, N, Ncam) visibility in (0, 1)."""

    def __init__(self, embed_dims: int = 256, hidden_channels: int = 32) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv1d(embed_dims, hidden_channels, kernel_size=1),
            nn.ReLU(),
            nn.Conv1d(hidden_channels, 1, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, per_camera: Tensor) -> Tensor:
        b, n, k, c = per_camera.shape
        scores = self.conv_block(per_camera.reshape(b * n, k, c).transpose(1, 2))  # (B*N, 1, Ncam)
        return scores.reshape(b, n, k)


class BNNeck(nn.Module):
    """(..., C) -> (identity logits (..., num_ids), BN feature (..., C))."""

    def __init__(self, feat_dim: int = 256, num_ids: int = 70) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(feat_dim)
        self.bn.bias.requires_grad_(False)  # BNNeck: the shift is frozen at 0
        self.classifier = nn.Linear(feat_dim, num_ids, bias=False)
        nn.init.kaiming_normal_(self.classifier.weight, mode="fan_out")

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        flat = self.bn(feature.reshape(-1, feature.shape[-1]))
        bn_feature = flat.reshape(feature.shape)
        return self.classifier(bn_feature), bn_feature


class ReIDBranch(nn.Module):
    """Visibility-weighted camera fusion + BNNeck.

    Args:
        embed_dims: C.
        hidden_channels: VisibilityNet hidden width (the card: 32).
        num_ids: identities of the ID classifier (the dataset's ``num_ids``).
    """

    def __init__(self, embed_dims: int = 256, hidden_channels: int = 32, num_ids: int = 70) -> None:
        super().__init__()
        self.visibility_net = VisibilityNet(embed_dims, hidden_channels)
        self.bnneck = BNNeck(embed_dims, num_ids)

    def forward(self, per_camera: Tensor) -> dict[str, Tensor]:
        """(B, N, Ncam, C) -> visibility (B, N, Ncam), reid_feature (B, N, C) fused, bn_feature, id_logits."""
        visibility = self.visibility_net(per_camera)
        fused = (per_camera * torch.softmax(visibility, dim=2)[..., None]).sum(dim=2)
        id_logits, bn_feature = self.bnneck(fused)
        return {"visibility": visibility, "reid_feature": fused, "bn_feature": bn_feature, "id_logits": id_logits}
