"""Associative recall: a set of key-value pairs, then a query key; predict its value.

Covers: sequence classification by a transformer encoder trained with AdamW, medium-hard. Each
of the first PAIRS tokens is one key-value pair (one token id per (key, value) combination);
the last token is a query key. The model must learn, from the token ids alone, which pair
tokens share the query's key, attend to that one from the CLS token and read its value off.
It sits near chance (a loss plateau) until the embeddings factor into key and value parts.
Measured over 15 epochs: at max_lr 1e-4 it stays near chance (24%), at 1e-3 it escapes about
halfway (98%), at 3e-3 after a quarter (99.6%).

Data: synthetic, drawn with a seeded torch.Generator. (A plain "k1 v1 k2 v2 ... ? k" token
sequence needs a two-hop induction circuit that did not form within this task's budget.)
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.data import TensorDataset

from disciplined.zoo._encoder import Encoder

SEED = 0
N_TRAIN, N_VAL = 4000, 2000
PAIRS = 8  # pairs per sequence (distinct keys): sequence length PAIRS + 1
KEYS, VALUES = 16, 8  # 128 pair tokens, then 16 query tokens; the 8 values are the classes
D_MODEL, N_HEADS, N_LAYERS = 64, 4, 2

optimizer = "adamw"
batch_size = 64
epochs = 15  # at 1e-3 the plateau ends about halfway through


def _draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    keys = torch.rand(n, KEYS, generator=g).argsort(1)[:, :PAIRS]  # distinct keys per row
    values = torch.randint(0, VALUES, (n, PAIRS), generator=g)
    pick = torch.randint(0, PAIRS, (n, 1), generator=g)
    query = KEYS * VALUES + keys.gather(1, pick)
    return torch.cat([keys * VALUES + values, query], 1), values.gather(1, pick).squeeze(1)


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(SEED)
    return TensorDataset(*_draw(N_TRAIN, g)), TensorDataset(*_draw(N_VAL, g))


def build_model() -> nn.Module:
    return Encoder(KEYS * VALUES + KEYS, PAIRS + 1, VALUES, D_MODEL, N_HEADS, N_LAYERS)
