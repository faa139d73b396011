"""A synthetic tabular classification problem, an MLP, SGD.

Covers: tabular classification with an MLP trained by SGD with momentum. The features are
scikit-learn's `make_classification` (Guyon's Madelon design): informative, redundant and
pure-noise columns, three clusters per class and 3% flipped labels, so accuracy tops out
well below 100% (~65% over 6 classes) and the MLP overfits: at max_lr 0.1-0.3 the validation
loss climbs in the second half while the accuracy still rises, so loss and accuracy disagree
about the best LR.

Data: `sklearn.datasets.make_classification` with a fixed random_state; generated, no files.
"""

from __future__ import annotations

import functools

import torch
from sklearn.datasets import make_classification
from torch import nn
from torch.utils.data import TensorDataset

SEED = 0
N_TRAIN, N_VAL = 4000, 2000  # enough that +-1 point of validation accuracy is signal
N_FEATURES, N_INFORMATIVE, N_CLASSES = 40, 12, 6
HIDDEN = 256  # wide enough to fit the clusters; two hidden layers

optimizer = "sgd"
batch_size = 128
epochs = 20  # ~630 steps: the accuracy levels off in the last third at max_lr 0.03-0.3


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    x, y = make_classification(
        n_samples=N_TRAIN + N_VAL, n_features=N_FEATURES, n_informative=N_INFORMATIVE,
        n_redundant=8, n_classes=N_CLASSES, n_clusters_per_class=3, flip_y=0.03,
        class_sep=1.0, random_state=SEED)
    x = (x - x[:N_TRAIN].mean(0)) / x[:N_TRAIN].std(0)  # standardise with train statistics
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    return TensorDataset(xt[:N_TRAIN], yt[:N_TRAIN]), TensorDataset(xt[N_TRAIN:], yt[N_TRAIN:])


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                         nn.ReLU(), nn.Linear(HIDDEN, N_CLASSES))

