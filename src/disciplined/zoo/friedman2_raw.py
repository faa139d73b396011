"""Friedman's regression problem #2 at its raw scale, an MLP, SGD.

Covers: regression whose targets are left unscaled (an impedance, 0 to ~1700 with a standard
deviation near 400: a constant predictor's MSE is ~1.4e5), trained by SGD with momentum. The
loss and its gradients are ~1e5 times a standardised problem's, so the usable LR is orders of
magnitude below a classifier's: at max_lr 1e-5 the MLP reaches a validation MSE of ~360 (a
linear model's is ~19000, the noise floor 100); at 1e-4 it blows up mid-run and recovers only
to ~2300; at 3e-4 it ends at ~5e8 and at 1e-3 in NaN.

Data: `sklearn.datasets.make_friedman2` with a fixed random_state; generated, no files. The
four inputs (on very different ranges) are standardised with the training statistics.
"""

from __future__ import annotations

import functools

import torch
from sklearn.datasets import make_friedman2
from torch import nn
from torch.utils.data import TensorDataset

SEED = 0
N_TRAIN, N_VAL = 2000, 1000
NOISE = 10.0  # in target units: a visible noise floor (MSE 100) far below the constant's
HIDDEN = 128  # two hidden layers, ~17k parameters

optimizer = "sgd"
batch_size = 64
epochs = 30  # ~950 steps, as friedman1_mlp

loss_fn = nn.MSELoss()
metric = None


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    x, y = make_friedman2(n_samples=N_TRAIN + N_VAL, noise=NOISE, random_state=SEED)
    x = (x - x[:N_TRAIN].mean(0)) / x[:N_TRAIN].std(0)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32).unsqueeze(1)  # raw scale, shaped like the output
    return TensorDataset(xt[:N_TRAIN], yt[:N_TRAIN]), TensorDataset(xt[N_TRAIN:], yt[N_TRAIN:])


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, 1))
