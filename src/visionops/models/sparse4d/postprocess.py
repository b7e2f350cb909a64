"""Post-processing (``SparseBox3DDecoder``): network outputs of one layer -> the card's per-sample detections.

Tracking mode (instance ids given), per sample:

1. per query the max sigmoid class probability and its label;
2. the top ``num_output`` queries by that probability (the card: 300);
3. score = probability x sigmoid(centerness logit), re-sorted by score;
4. kept where the *raw* class probability >= ``score_threshold`` (the card: 0.05);
5. boxes decoded with :func:`box_state.decode` -> ``[x, y, z, w, l, h, yaw, vx, vy, vz]``.

Without ids, the top-k runs over all (query, class) pairs as in the official detection mode. No NMS (the set
prediction is one-to-one). The official code returns ``cls_scores`` in the pre-re-sort order (misaligned with
the boxes); here every output is in the same order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionops.models.sparse4d.box_state import decode

CENTERNESS = 0
YAWNESS = 1


class SparseBox3DDecoder:
    """Select and decode detections.

    Args:
        num_output: queries kept before the threshold (top-k).
        score_threshold: minimum raw class probability; None keeps all ``num_output``.
    """

    def __init__(self, num_output: int = 300, score_threshold: float | None = 0.05) -> None:
        self.num_output, self.score_threshold = num_output, score_threshold

    @torch.no_grad()
    def decode(
        self,
        classification: Tensor,
        prediction: Tensor,
        quality: Tensor | None = None,
        instance_ids: Tensor | None = None,
        instance_feature: Tensor | None = None,
    ) -> list[dict[str, Tensor]]:
        """Detections of one decoder layer.

        Args:
            classification: (B, N, C) logits.
            prediction: (B, N, 11) box states.
            quality: (B, N, 2) [centerness, yawness] logits, or None (score = probability).
            instance_ids: (B, N) int64 ids from the bank (tracking mode) or None.
            instance_feature: (B, N, D) final features, returned as ``instance_feats`` when given.

        Returns:
            One dict per sample: ``boxes_3d`` (K, 10), ``scores_3d`` (K,), ``labels_3d`` (K,) int64,
            ``cls_scores`` (K,) raw probabilities, and ``instance_ids`` (K,) / ``instance_feats`` (K, D) when given.
        """
        b, n, c = classification.shape
        probability = classification.float().sigmoid()
        if instance_ids is not None:
            probability, labels = probability.max(dim=-1)  # (B, N)
            k = min(self.num_output, n)
            # Stable sorts (ties keep the lower query index): the ONNX host decoder gives the same order.
            cls_scores, query = (x[:, :k] for x in probability.sort(dim=1, descending=True, stable=True))
            labels = torch.gather(labels, 1, query)
        else:
            k = min(self.num_output, n * c)
            cls_scores, flat = probability.flatten(1).topk(k, dim=1)
            query, labels = flat // c, flat % c
        scores = cls_scores
        if quality is not None:
            centerness = torch.gather(quality[..., CENTERNESS].float(), 1, query).sigmoid()
            scores, order = (cls_scores * centerness).sort(dim=1, descending=True, stable=True)
            cls_scores, query, labels = (torch.gather(x, 1, order) for x in (cls_scores, query, labels))
        results = []
        for i in range(b):
            keep = torch.ones_like(cls_scores[i], dtype=torch.bool) if self.score_threshold is None \
                else cls_scores[i] >= self.score_threshold
            q = query[i][keep]
            result = {
                "boxes_3d": decode(prediction[i, q].float()),
                "scores_3d": scores[i][keep],
                "labels_3d": labels[i][keep],
                "cls_scores": cls_scores[i][keep],
            }
            if instance_ids is not None:
                result["instance_ids"] = instance_ids[i, q]
            if instance_feature is not None:
                result["instance_feats"] = instance_feature[i, q]
            results.append(result)
        return results

    def from_outputs(self, outputs: dict, layer: int = -1) -> list[dict[str, Tensor]]:
        """Decode a :class:`~visionops.models.sparse4d.model.Sparse4D` output dict (last layer by default)."""
        quality = outputs.get("quality")
        return self.decode(
            outputs["classification"][layer],
            outputs["prediction"][layer],
            None if quality is None else quality[layer],
            outputs.get("instance_ids"),
            outputs.get("instance_feature"),
        )
