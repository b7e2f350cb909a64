"""Anchor encoder (``SparseBox3DEncoder``, cat mode): the 11-d box state -> a positional embedding.

Four independent MLPs embed the centre (x, y, z in metres), the log sizes, the yaw vector (sin, cos) and the
velocity (m/s); each MLP is ``loops`` x [Linear -> ReLU -> LayerNorm] (the config's in_loops=1, out_loops=4).
Their outputs are concatenated (no output FC in cat mode), e.g. 128 + 32 + 32 + 64 = 256 for the card. The
decoder recomputes the embedding after every refinement, so the embedding always describes the current box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from visionops.models.sparse4d.box_state import CENTER, LOG_SIZE, VX, YAW


def linear_relu_ln(in_dims: int, embed_dims: int, out_loops: int, in_loops: int = 1) -> list[nn.Module]:
    """``out_loops`` x [``in_loops`` x (Linear, ReLU), LayerNorm]: the MLP brick shared by the Sparse4D heads."""
    layers: list[nn.Module] = []
    for _ in range(out_loops):
        for _ in range(in_loops):
            layers += [nn.Linear(in_dims, embed_dims), nn.ReLU(inplace=True)]
            in_dims = embed_dims
        layers.append(nn.LayerNorm(embed_dims))
    return layers


class SparseBox3DEncoder(nn.Module):
    """Box state (B, N, 11) -> anchor embedding (B, N, sum(embed_dims)).

    Args:
        embed_dims: output widths of the (position, size, yaw, velocity) MLPs; the card's (128, 32, 32, 64).
        vel_dims: velocity components embedded (3 = vx, vy, vz; 0 = no velocity MLP).
        loops: [Linear, ReLU, LayerNorm] blocks per MLP (the config's ``out_loops``).
    """

    def __init__(self, embed_dims: Sequence[int] = (128, 32, 32, 64), vel_dims: int = 3, loops: int = 4) -> None:
        super().__init__()
        pos_dims, size_dims, yaw_dims, vel_out = embed_dims
        self.vel_dims = vel_dims
        self.out_dims = pos_dims + size_dims + yaw_dims + (vel_out if vel_dims > 0 else 0)
        self.pos_fc = nn.Sequential(*linear_relu_ln(3, pos_dims, loops))
        self.size_fc = nn.Sequential(*linear_relu_ln(3, size_dims, loops))
        self.yaw_fc = nn.Sequential(*linear_relu_ln(2, yaw_dims, loops))
        self.vel_fc = nn.Sequential(*linear_relu_ln(vel_dims, vel_out, loops)) if vel_dims > 0 else None

    def forward(self, box_state: Tensor) -> Tensor:
        """(..., 11) ``[x, y, z, log w, log l, log h, sin, cos, vx, vy, vz]`` -> (..., out_dims)."""
        parts = [
            self.pos_fc(box_state[..., CENTER]),
            self.size_fc(box_state[..., LOG_SIZE]),
            self.yaw_fc(box_state[..., YAW]),
        ]
        if self.vel_fc is not None:
            parts.append(self.vel_fc(box_state[..., VX:VX + self.vel_dims]))
        return torch.cat(parts, dim=-1)
