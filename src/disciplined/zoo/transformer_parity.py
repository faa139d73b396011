"""Is a marked token's count odd or even: a small transformer encoder, AdamW.

Covers: sequence classification by a transformer encoder trained with AdamW, the hard end.
The marked token occurs 0 to 5 times among random tokens; the label is the parity of its
count. Parity is a non-monotone function of a count that attention averages away: the model
soon learns "absent means even" (~66%) and then sits on a long loss plateau until it counts
exactly. Measured over 15 epochs: at max_lr 1e-4 it never leaves the plateau (66%), at 3e-4
and 1e-3 it escapes about halfway (100%), at 3e-3 late and unstably (~91%).

Data: synthetic, drawn with a seeded torch.Generator.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.data import TensorDataset

from disciplined.zoo._encoder import Encoder

SEED = 0
N_TRAIN, N_VAL = 4000, 2000
LENGTH = 12  # at 20 the model stayed at 66% at every LR within the budget
VOCAB = 8  # token 0 is the marked one
MAX_COUNT = 5  # counts 0..5 drawn uniformly: both parities equally likely
D_MODEL, N_HEADS, N_LAYERS = 64, 4, 2

optimizer = "adamw"
batch_size = 64
epochs = 15  # at 1e-3 the plateau ends about halfway through


def _draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    count = torch.randint(0, MAX_COUNT + 1, (n,), generator=g)
    ranks = torch.rand(n, LENGTH, generator=g).argsort(1).argsort(1)  # a random order per row
    x[ranks < count[:, None]] = 0  # the marked token at `count` random positions
    return x, count % 2


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(SEED)
    return TensorDataset(*_draw(N_TRAIN, g)), TensorDataset(*_draw(N_VAL, g))


def build_model() -> nn.Module:
    return Encoder(VOCAB, LENGTH, 2, D_MODEL, N_HEADS, N_LAYERS)
