"""Asymmetric FFN: the decoder's feed-forward block whose input (2C, the DFA's [aggregated, instance]
concatenation) is wider than its output (C).

    x = LN(x)                                      # pre-norm on the 2C input
    out = Linear(2C -> F) -> ReLU -> Dropout -> Linear(F -> C) -> Dropout
    return Linear(2C -> C)(x) + out               # identity branch projects the *pre-normed* input
"""

from __future__ import annotations

from torch import Tensor, nn


class AsymmetricFFN(nn.Module):
    """(..., in_channels) -> (..., embed_dims).

    Args:
        in_channels: input width (the card: 512).
        embed_dims: output width (the card: 256).
        feedforward_channels: hidden width (the card: 1024).
        ffn_drop: dropout after the activation and after the second Linear (the card: 0.1).
    """

    def __init__(self, in_channels: int = 512, embed_dims: int = 256, feedforward_channels: int = 1024,
                 ffn_drop: float = 0.1) -> None:
        super().__init__()
        self.pre_norm = nn.LayerNorm(in_channels)
        self.layers = nn.Sequential(
            nn.Linear(in_channels, feedforward_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(ffn_drop),
            nn.Linear(feedforward_channels, embed_dims),
            nn.Dropout(ffn_drop),
        )
        self.identity_fc = nn.Identity() if in_channels == embed_dims else nn.Linear(in_channels, embed_dims)
        for m in self.modules():  # the head's Xavier init of every matrix
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre_norm(x)
        return self.identity_fc(x) + self.layers(x)
