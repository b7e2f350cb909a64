"""Sparse4D box state: the 11-number anchor / prediction vector and its decoded 10-number form.

Encoded (anchors, regression targets, refinement outputs), shape (..., 11)::

    [x, y, z, log(w), log(l), log(h), sin(yaw), cos(yaw), vx, vy, vz]

centre in metres (BEV frame of the group), log sizes of the GT ``[w, l, h]`` (metres; ``w`` is the extent
along the box's own x axis, the heading axis, as in the AICity GT scale), yaw in radians, velocity in m/s.

Decoded (model outputs, the card's ``boxes_3d``), shape (..., 10)::

    [x, y, z, w, l, h, yaw, vx, vy, vz]

sizes = exp, yaw = atan2(sin, cos). OVPKL ``gt_boxes`` (N, 7) ``[x, y, z, w, l, h, heading]`` plus
``gt_velocity`` (N, 3) encode with :func:`encode_gt`.
"""

from __future__ import annotations

import torch
from torch import Tensor

X, Y, Z, W, L, H, SIN_YAW, COS_YAW, VX, VY, VZ = range(11)
STATE_DIM = 11
DECODED_DIM = 10
CENTER = slice(X, Z + 1)
LOG_SIZE = slice(W, H + 1)
YAW = slice(SIN_YAW, COS_YAW + 1)
VEL = slice(VX, VZ + 1)

MIN_SIZE_M = 1e-3
"""Sizes are clamped to this before the log so a zero-size GT box (a bad label) stays finite."""


def encode_gt(boxes: Tensor, velocity: Tensor | None = None) -> Tensor:
    """(..., 7) ``[x, y, z, w, l, h, yaw]`` (+ (..., 3) velocity, m/s; zeros if None) -> (..., 11)."""
    if boxes.shape[-1] != 7:
        raise ValueError(f"encode_gt: boxes must be (..., 7) [x, y, z, w, l, h, yaw], got {tuple(boxes.shape)}")
    if velocity is None:
        velocity = boxes.new_zeros((*boxes.shape[:-1], 3))
    sizes = boxes[..., 3:6].clamp(min=MIN_SIZE_M).log()
    yaw = boxes[..., 6:7]
    return torch.cat([boxes[..., :3], sizes, yaw.sin(), yaw.cos(), velocity], dim=-1)


def decode(state: Tensor) -> Tensor:
    """(..., 11) encoded state -> (..., 10) ``[x, y, z, w, l, h, yaw, vx, vy, vz]``."""
    yaw = torch.atan2(state[..., SIN_YAW], state[..., COS_YAW])[..., None]
    return torch.cat([state[..., CENTER], state[..., LOG_SIZE].exp(), yaw, state[..., VEL]], dim=-1)
