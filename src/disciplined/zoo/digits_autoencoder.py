"""An MLP autoencoder for 8x8 digits: MSE reconstruction through an 8-number bottleneck, AdamW.

Covers: unsupervised reconstruction scored by MSE (the targets are the inputs), a
regression-kind loss whose floor is set by the bottleneck, not by label noise. Deep and narrow
in the middle, with no normalisation layers.

Data: `sklearn.datasets.load_digits`, bundled with scikit-learn (no download); pixels scaled to
[0, 1]; a fixed random 1437/360 split. A constant (mean-image) predictor's MSE is ~0.07; the
autoencoder reaches ~0.02 (0.018 at max_lr 1e-2, 0.023 at 1e-3).
"""

from __future__ import annotations

import functools

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

SEED = 0
N_VAL = 360  # of 1797, as the built-in digits task
BOTTLENECK = 8  # small enough that the reconstruction stays visibly imperfect
HIDDEN = 128  # encoder 64 -> 128 -> 8, decoder 8 -> 128 -> 64

optimizer = "adamw"
batch_size = 64
epochs = 40  # ~900 steps: small data, and the decoder keeps improving slowly

loss_fn = nn.MSELoss()
metric = None


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    val, train = x[order[:N_VAL]], x[order[N_VAL:]]
    return TensorDataset(train, train), TensorDataset(val, val)


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, BOTTLENECK), nn.ReLU(),
        nn.Linear(BOTTLENECK, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 64))
