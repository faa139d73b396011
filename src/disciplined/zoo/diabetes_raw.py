"""scikit-learn's diabetes data, raw-scale targets, an over-parameterised MLP, AdamW.

Covers: regression on a small real data set (442 patients) with targets left at their raw
scale (a disease-progression score from 25 to 346: a constant predictor's validation MSE is
~5800, a linear model's ~2900), so the loss is far from order 1 and the output layer must grow
a long way (AdamW moves each weight by ~LR a step: a small LR cannot get there in time). A
2x256 MLP on 342 samples overfits within the 60 epochs: at max_lr 1e-2 the validation MSE
bottoms near 3100 early and ends ~3300, at 5e-2 ~4100; regularisation decides the result.

Data: `sklearn.datasets.load_diabetes`, bundled with scikit-learn (no download); inputs
standardised with the training statistics, a fixed random 342/100 split.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import TensorDataset

SEED = 0
N_VAL = 100  # of 442: the rest (342) train
HIDDEN = 256  # ~70k parameters for 342 samples: over-parameterised on purpose

optimizer = "adamw"
batch_size = 32
epochs = 60  # long for so few samples (~660 steps): time enough to overfit

loss_fn = nn.MSELoss()
metric = None


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(SEED).permutation(len(y))
    val, train = order[:N_VAL], order[N_VAL:]
    x = (x - x[train].mean(0)) / x[train].std(0)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32).unsqueeze(1)  # raw scale, shaped like the output
    return TensorDataset(xt[train], yt[train]), TensorDataset(xt[val], yt[val])


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(10, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, 1))
