"""Key points of a 3D anchor box (``SparseBox3DKeyPointsGenerator``): where the DFA samples image features.

Per anchor, 13 points in the world (BEV-group) frame, metres:

* 7 fixed: the centre and six points just inside the face centres: offsets
  ``{0, +-0.45 e_x, +-0.45 e_y, +-0.45 e_z}`` multiplied element-wise by the box size ``exp(log size)``, so
  ``+-0.45 * w`` along the box's heading axis, ``+-0.45 * l`` across it, ``+-0.45 * h`` vertically (the box spans
  +-0.5 * size, so the points sit just inside the faces);
* 6 learnable: ``Linear(C -> 6 * 3)`` on the instance feature, ``sigmoid - 0.5`` (inside the box), times size.

All offsets are rotated by yaw about z and added to the centre. Order: fixed points first, then learnable
(the re-ID branch takes the last ``num_learnable_pts``). Written with cat/stack only (exportable).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from visionops.models.sparse4d.box_state import CENTER, COS_YAW, LOG_SIZE, SIN_YAW
from visionops.models.sparse4d.presets import FIX_SCALE_045


def rotate_yaw(points: Tensor, sin_yaw: Tensor, cos_yaw: Tensor) -> Tensor:
    """Rotate (..., P, 3) offsets about z by yaw given as (...,) sin and cos: R = [[c, -s, 0], [s, c, 0], [0, 0, 1]]."""
    s, c = sin_yaw[..., None], cos_yaw[..., None]
    x, y, z = points.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y, z], dim=-1)


class SparseBox3DKeyPointsGenerator(nn.Module):
    """Anchor (B, N, 11) [+ instance feature (B, N, C)] -> key points (B, N, P, 3), P = len(fix_scale) + learnable.

    Args:
        embed_dims: C, width of the instance feature (only used with learnable points).
        num_learnable_pts: points predicted from the feature (the card: 6).
        fix_scale: fixed offsets as fractions of the box size (the card: :data:`FIX_SCALE_045`).
    """

    def __init__(self, embed_dims: int = 256, num_learnable_pts: int = 6,
                 fix_scale: Sequence[Sequence[float]] = FIX_SCALE_045) -> None:
        super().__init__()
        self.num_learnable_pts = num_learnable_pts
        self.register_buffer("fix_scale", torch.tensor(fix_scale, dtype=torch.float32), persistent=False)
        self.num_pts = len(fix_scale) + num_learnable_pts
        self.learnable_fc = nn.Linear(embed_dims, num_learnable_pts * 3) if num_learnable_pts > 0 else None
        if self.learnable_fc is not None:
            nn.init.xavier_uniform_(self.learnable_fc.weight)
            nn.init.zeros_(self.learnable_fc.bias)

    def forward(self, anchor: Tensor, instance_feature: Tensor | None = None) -> Tensor:
        """Key points in the anchor's frame of reference (world / BEV group), metres, (B, N, P, 3)."""
        size = anchor[..., None, LOG_SIZE].exp()  # (B, N, 1, 3)
        offsets = self.fix_scale.to(anchor.dtype) * size  # (B, N, 7, 3)
        if self.learnable_fc is not None:
            if instance_feature is None:
                raise ValueError("learnable key points need the instance feature")
            learned = self.learnable_fc(instance_feature).unflatten(-1, (self.num_learnable_pts, 3))
            offsets = torch.cat([offsets, (learned.sigmoid() - 0.5) * size], dim=-2)
        rotated = rotate_yaw(offsets, anchor[..., SIN_YAW], anchor[..., COS_YAW])
        return rotated + anchor[..., None, CENTER]
