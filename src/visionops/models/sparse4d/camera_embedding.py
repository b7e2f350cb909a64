"""Camera embedding: an MLP on the (normalised) 3x4 projection matrix of each camera.

Design decision (design.md): we use the official Sparse4D geometry-based embedding, not TAO's 20 camera
*slots*. The DFA adds this embedding to each instance's query before predicting the per-camera sampling
weights, so a camera is recognised by its geometry: the result does not depend on the order of the cameras
and any number of cameras works. It is not weight-compatible with TAO's slot-based ``weights_fc``.

Normalisation (our addition; the brief notes raw entries are large in world coordinates): the world->pixel
matrix ``P = K [R | t]`` (with the augmentation folded in) is

1. divided by the norm of its third row's rotation part, which makes it invariant to the arbitrary
   homogeneous scale (for ``K [R | t]`` that norm is already 1);
2. left-multiplied by ``diag(1 / W, 1 / H, 1)`` so it maps to normalised image coordinates (u, v in [0, 1])
   like the DFA's sampling locations - focal lengths become O(1) ratios independent of the input size;
3. its translation column divided by ``translation_scale`` (metres, default 10 m) so camera positions in a
   warehouse-sized BEV group are O(1) like the rotation part.

The MLP is [Linear(12 -> C), ReLU, LN, Linear(C -> C), ReLU, LN] as in the official code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from visionops.models.sparse4d.anchor_encoder import linear_relu_ln


def normalise_projection(projection_mat: Tensor, image_wh: Tensor, translation_scale: float = 10.0) -> Tensor:
    """World->pixel projections -> the 12 numbers the camera MLP sees.

    Args:
        projection_mat: (B, Ncam, 4, 4) world->pixel (homogeneous), only the first 3 rows are used.
        image_wh: (B, Ncam, 2) network input [W, H] in pixels.
        translation_scale: metres per unit of the translation column.

    Returns:
        (B, Ncam, 12) row-major flattened normalised 3x4 matrix.
    """
    p = projection_mat[..., :3, :]
    scale = p[..., 2:3, :3].norm(dim=-1, keepdim=True).clamp(min=1e-6)  # (B, Ncam, 1, 1)
    p = p / scale
    wh1 = torch.cat([image_wh, torch.ones_like(image_wh[..., :1])], dim=-1)  # (B, Ncam, 3)
    p = p / wh1[..., :, None]
    p = torch.cat([p[..., :3], p[..., 3:] / translation_scale], dim=-1)
    return p.flatten(-2)


class CameraEmbedding(nn.Module):
    """(B, Ncam, 4, 4) projection + (B, Ncam, 2) image size -> (B, Ncam, C) embedding.

    Args:
        embed_dims: C.
        translation_scale: see :func:`normalise_projection`.
    """

    def __init__(self, embed_dims: int = 256, translation_scale: float = 10.0) -> None:
        super().__init__()
        self.translation_scale = translation_scale
        self.mlp = nn.Sequential(*linear_relu_ln(12, embed_dims, out_loops=2))

    def forward(self, projection_mat: Tensor, image_wh: Tensor) -> Tensor:
        return self.mlp(normalise_projection(projection_mat, image_wh, self.translation_scale))
