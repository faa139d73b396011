"""The small transformer encoder the zoo's sequence tasks share (a helper of their task files,
not a task): token and learned position embeddings, a CLS token read by a linear head."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Token + learned position embeddings, a CLS token, pre-norm encoder, linear head."""

    def __init__(self, vocab: int, length: int, n_classes: int, d_model: int,
                 n_heads: int, n_layers: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab + 1, d_model)  # the last id is CLS
        self.positions = nn.Parameter(0.02 * torch.randn(length + 1, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)
        self.cls = vocab

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = torch.full((len(x), 1), self.cls, dtype=x.dtype, device=x.device)
        h = self.tokens(torch.cat([cls, x], 1)) + self.positions
        return self.head(self.norm(self.encoder(h)[:, 0]))
