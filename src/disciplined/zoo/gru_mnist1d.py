"""MNIST-1D read one value at a time by a GRU, AdamW.

Covers: a recurrent net on sequence classification: a single-layer GRU reads the 40 values of
an MNIST-1D signal in order and a linear head classifies its last hidden state. Gradients flow
back through 40 steps, so the usable LR range and the sensitivity to momentum (Adam's beta1)
differ from a feed-forward net's on the same data. The GRU sits at chance for the first part of
the run, then learns at a pace set by the LR: ~95% validation accuracy at max_lr 1e-2, ~52% at
3e-3 and ~37% at 1e-3 in the same 15 epochs.

Data: MNIST-1D (Greydanus 2020) generated locally by `mnist1d.data.make_dataset` with its
default arguments (4000 train, 1000 test, length 40); never downloaded.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from disciplined.zoo._mnist1d import generated_mnist1d

HIDDEN = 64  # GRU state size: ~13k parameters, ~15 ms a step of 100 on one thread

optimizer = "adamw"
batch_size = 100
epochs = 15  # 600 steps, ~10 s: recurrent steps are dear on a CPU


def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    return generated_mnist1d()


class GRUClassifier(nn.Module):
    """(N, 40) signals -> a GRU over 40 one-value steps -> logits from the last state."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(x.unsqueeze(-1))
        return self.head(last[-1])


def build_model() -> nn.Module:
    return GRUClassifier()
