"""Box refinement + classification + quality (``SparseBox3DRefinementModule``, one per decoder layer).

* reg: ``f = instance + anchor_embed`` -> 2 x [Linear, ReLU, Linear, ReLU, LN] -> Linear(C -> 11) -> a learnable
  per-channel scale (init 1). Centre, log sizes and (with ``refine_yaw``) sin/cos are *residuals* added to the
  anchor; sin/cos are not re-normalised (``normalize_yaw=False``).
* velocity: the network predicts a displacement over the frame interval; ``v = out[8:11] / dt`` (m/s). TAO does
  **not** add the anchor's velocity (the official code does: ``add_anchor_velocity=True``). A frame interval
  of dt seconds therefore has to match between training and deployment.
* cls (on the instance feature only): 2 x [Linear, ReLU, LN] -> Linear(C -> num_classes), bias init
  -log((1 - 0.01) / 0.01) (prior probability 0.01).
* quality (on ``f``): 2 x [Linear, ReLU, LN] -> Linear(C -> 2) = [centerness, yawness] logits.

Written with slices and cat, without in-place indexed assignment, so it traces to ONNX (official issues #59/#97).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from visionops.models.sparse4d.anchor_encoder import linear_relu_ln
from visionops.models.sparse4d.box_state import SIN_YAW, STATE_DIM, VX

CLS_PRIOR = 0.01


class SparseBox3DRefinementModule(nn.Module):
    """Refine anchors, classify, estimate quality.

    Args:
        embed_dims: C.
        num_classes: classes (sigmoid logits, no background channel).
        refine_yaw: sin/cos are residuals on the anchor's (True) or predicted directly (False, official).
        with_quality_estimation: predict [centerness, yawness].
        add_anchor_velocity: official behaviour ``v = out / dt + anchor_v``; False (TAO) = ``out / dt``.
    """

    def __init__(self, embed_dims: int = 256, num_classes: int = 6, refine_yaw: bool = True,
                 with_quality_estimation: bool = True, add_anchor_velocity: bool = False) -> None:
        super().__init__()
        self.refine_yaw, self.add_anchor_velocity = refine_yaw, add_anchor_velocity
        self.num_classes = num_classes
        self.layers = nn.Sequential(*linear_relu_ln(embed_dims, embed_dims, out_loops=2, in_loops=2),
                                    nn.Linear(embed_dims, STATE_DIM))
        self.scale = nn.Parameter(torch.ones(STATE_DIM))
        self.cls_layers = nn.Sequential(*linear_relu_ln(embed_dims, embed_dims, out_loops=2),
                                        nn.Linear(embed_dims, num_classes))
        nn.init.constant_(self.cls_layers[-1].bias, -math.log((1 - CLS_PRIOR) / CLS_PRIOR))
        self.quality_layers = None
        if with_quality_estimation:
            self.quality_layers = nn.Sequential(*linear_relu_ln(embed_dims, embed_dims, out_loops=2),
                                                nn.Linear(embed_dims, 2))

    def forward(
        self,
        instance_feature: Tensor,
        anchor: Tensor,
        anchor_embed: Tensor,
        time_interval: Tensor | float,
        return_cls: bool = True,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """One refinement.

        Args:
            instance_feature: (B, N, C).
            anchor: (B, N, 11) current box state.
            anchor_embed: (B, N, C).
            time_interval: (B,) seconds since the previous frame (or a float for all samples).
            return_cls: compute the cls and quality branches (the decoder skips them for middle layers in eval).

        Returns:
            prediction (B, N, 11), classification logits (B, N, num_classes) or None, quality (B, N, 2) or None.
        """
        feature = instance_feature + anchor_embed
        out = self.layers(feature) * self.scale
        stop = SIN_YAW + 2 if self.refine_yaw else SIN_YAW
        head = out[..., :stop] + anchor[..., :stop]
        direct_yaw = out[..., stop:VX]  # absolute sin/cos without refine_yaw; empty with it
        dt = torch.as_tensor(time_interval, dtype=out.dtype, device=out.device)
        dt = dt.reshape(-1, *([1] * (out.dim() - 1))) if dt.dim() else dt
        velocity = out[..., VX:] / dt
        if self.add_anchor_velocity:
            velocity = velocity + anchor[..., VX:]
        prediction = torch.cat([head, direct_yaw, velocity], dim=-1)
        if not return_cls:
            return prediction, None, None
        cls = self.cls_layers(instance_feature)
        quality = self.quality_layers(feature) if self.quality_layers is not None else None
        return prediction, cls, quality
