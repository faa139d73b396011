"""Friedman's regression problem #1, an MLP, standardised targets, SGD.

Covers: regression with an MSE loss at unit scale (targets standardised with the training
mean and standard deviation), trained by SGD with momentum. The target mixes a product inside
a sine, a quadratic and linear terms of five of the ten inputs; the other five are noise. A
constant predictor scores an MSE of ~1, a linear model ~0.27, the noise floor is ~0.04; the MLP
reaches ~0.06 at max_lr 0.05.

Data: `sklearn.datasets.make_friedman1` with a fixed random_state; generated, no files.
"""

from __future__ import annotations

import functools

import torch
from sklearn.datasets import make_friedman1
from torch import nn
from torch.utils.data import TensorDataset

SEED = 0
N_TRAIN, N_VAL = 2000, 1000  # enough data that this MLP does not overfit much
NOISE = 1.0  # standard deviation of the added noise, in the raw target's units (std ~5)
HIDDEN = 128  # two hidden layers, ~18k parameters

optimizer = "sgd"
batch_size = 64
epochs = 30  # ~950 steps: a smooth target needs more steps than a classifier's boundary

loss_fn = nn.MSELoss()
metric = None


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    x, y = make_friedman1(n_samples=N_TRAIN + N_VAL, n_features=10, noise=NOISE,
                          random_state=SEED)
    x = (x - x[:N_TRAIN].mean(0)) / x[:N_TRAIN].std(0)
    y = (y - y[:N_TRAIN].mean()) / y[:N_TRAIN].std()
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32).unsqueeze(1)  # (N, 1), as the model's output
    return TensorDataset(xt[:N_TRAIN], yt[:N_TRAIN]), TensorDataset(xt[N_TRAIN:], yt[N_TRAIN:])


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(10, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, 1))
