"""Decoupled multi-head attention of the Sparse4D decoder (``gnn`` and ``temp_gnn`` ops).

"Decoupled" (Sparse4D v3): instead of adding the anchor embedding to the feature, queries and keys are the
*concatenation* [feature, anchor_embed] (2C = 512 for the card), so content and position get separate
channels. Values are ``fc_before(feature)`` (Linear C -> 2C, no bias); the MHA output plus its identity (the
2C concatenated query) goes through ``fc_after`` (Linear 2C -> C, no bias). ``fc_before``/``fc_after`` are
shared by all attention ops of the head; each op has its own ``nn.MultiheadAttention``.

Note that the residual path therefore also passes through ``fc_after``: ``out = fc_after(q + drop(attn))``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ResidualMHA(nn.Module):
    """``nn.MultiheadAttention`` (batch first) with an identity shortcut: ``query + dropout(attn(q, k, v))``.

    Args:
        embed_dims: width of query/key/value (2C in decoupled mode).
        num_heads: attention heads (the card: 8).
        dropout: dropout on the attention probabilities *and* on the output before the shortcut (mmcv's
            ``dropout`` argument sets both; the card: 0.1).
    """

    def __init__(self, embed_dims: int = 512, num_heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        for p in self.attn.parameters():  # the head's Xavier init of every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                attn_mask: Tensor | None = None) -> Tensor:
        """(B, Nq, D) queries, (B, Nk, D) keys/values (default: key = query, value = key) -> (B, Nq, D).

        ``attn_mask`` (Nq, Nk) bool, True = blocked (PyTorch's convention).
        """
        key = query if key is None else key
        value = key if value is None else value
        out = self.attn(query, key, value, attn_mask=attn_mask, need_weights=False)[0]
        return query + self.dropout(out)


def decoupled_attention(
    layer: ResidualMHA,
    fc_before: nn.Linear,
    fc_after: nn.Linear,
    query: Tensor,
    query_pos: Tensor,
    key: Tensor | None = None,
    key_pos: Tensor | None = None,
    value: Tensor | None = None,
    attn_mask: Tensor | None = None,
) -> Tensor:
    """One decoupled attention op.

    Args:
        layer: the op's :class:`ResidualMHA` (width 2C).
        fc_before: shared Linear(C -> 2C, no bias) applied to ``value`` when given.
        fc_after: shared Linear(2C -> C, no bias) applied to the result.
        query: (B, Nq, C) instance features; query_pos: (B, Nq, C) their anchor embeddings.
        key / key_pos: (B, Nk, C) each, or None for self-attention over the query.
        value: (B, Nk, C) or None; None means value = the concatenated key (2C, fc_before skipped), the
            official fallback for ``temp_gnn`` without a cache.
        attn_mask: (Nq, Nk) bool, True = blocked.

    Returns:
        (B, Nq, C).
    """
    q = torch.cat([query, query_pos], dim=-1)
    k = None if key is None else torch.cat([key, key_pos], dim=-1)
    v = None if value is None else fc_before(value)
    return fc_after(layer(q, k, v, attn_mask=attn_mask))
