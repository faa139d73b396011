"""Which of three tokens is the most frequent: a small transformer encoder, AdamW.

Covers: sequence classification by a transformer encoder trained with AdamW, the easy end.
Each sequence mixes three counted tokens with five distractor tokens; the label is the counted
token that occurs most often (ties are re-drawn). The CLS token must learn to attend to the
counted tokens and compare their counts: a short plateau at chance at a good LR, a long one at
1e-4, and 100% validation accuracy in the end, so the validation loss ranks the runs.

Data: synthetic, drawn with a seeded torch.Generator.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.data import TensorDataset

from disciplined.zoo._encoder import Encoder

SEED = 0
N_TRAIN, N_VAL = 3000, 2000
LENGTH = 24  # long enough that counts often differ by one: the comparison must be exact
N_CLASSES = 3  # the counted tokens 0, 1, 2
N_DISTRACTORS = 5  # tokens 3..7: present, never counted
D_MODEL, N_HEADS, N_LAYERS = 48, 4, 2  # small: this is the easy transformer task

optimizer = "adamw"
batch_size = 64
epochs = 8  # it learns early at a good LR; at 1e-4 it needs most of the 8


def _draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences without a tie for the most frequent counted token."""
    vocab = N_CLASSES + N_DISTRACTORS
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    while sum(len(y) for y in ys) < n:
        x = torch.randint(0, vocab, (2 * n, LENGTH), generator=g)
        counts = torch.stack([(x == c).sum(1) for c in range(N_CLASSES)], 1)
        top2 = counts.topk(2, dim=1).values
        keep = top2[:, 0] > top2[:, 1]
        xs.append(x[keep])
        ys.append(counts[keep].argmax(1))
    return torch.cat(xs)[:n], torch.cat(ys)[:n]


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(SEED)
    return TensorDataset(*_draw(N_TRAIN, g)), TensorDataset(*_draw(N_VAL, g))


def build_model() -> nn.Module:
    return Encoder(N_CLASSES + N_DISTRACTORS, LENGTH, N_CLASSES, D_MODEL, N_HEADS, N_LAYERS)
