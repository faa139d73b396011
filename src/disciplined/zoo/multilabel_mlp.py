"""Multi-label classification of synthetic bag-of-words documents, an MLP, SGD.

Covers: multi-label classification (each sample has any number of 10 labels) with a
binary-cross-entropy-with-logits loss averaged over labels, scored by loss only (metric None:
the trainer's argmax accuracy does not apply). The loss starts near 0.69 (predicting each
label's frequency scores ~0.60) and its gradients per output are small: a different scale from
cross-entropy over classes. At max_lr 0.1 the validation loss levels off near 0.49; at 0.3 it
overfits and ends back at 0.70.

Data: `sklearn.datasets.make_multilabel_classification` (word counts drawn per label from
multinomials) with a fixed random_state; counts log1p-transformed and standardised.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import make_multilabel_classification
from torch import nn
from torch.utils.data import TensorDataset

SEED = 0
N_TRAIN, N_VAL = 3000, 1000
N_FEATURES, N_LABELS = 60, 10  # a 60-word vocabulary, 10 labels, ~3 labels per document
HIDDEN = 256  # two hidden layers, ~80k parameters: enough to overfit

optimizer = "sgd"
batch_size = 64
epochs = 20  # ~940 steps: the loss levels off by mid-run at max_lr 0.1

loss_fn = nn.BCEWithLogitsLoss()
metric = None


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    x, y = make_multilabel_classification(
        n_samples=N_TRAIN + N_VAL, n_features=N_FEATURES, n_classes=N_LABELS, n_labels=3,
        length=40, allow_unlabeled=True, random_state=SEED)
    x = np.log1p(x)
    x = (x - x[:N_TRAIN].mean(0)) / x[:N_TRAIN].std(0)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)  # (N, 10) of 0/1, as BCEWithLogitsLoss wants
    return TensorDataset(xt[:N_TRAIN], yt[:N_TRAIN]), TensorDataset(xt[N_TRAIN:], yt[N_TRAIN:])


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                         nn.ReLU(), nn.Linear(HIDDEN, N_LABELS))
