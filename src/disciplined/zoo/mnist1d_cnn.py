"""MNIST-1D, a 1-D CNN without normalisation layers, SGD.

Covers: image-like classification by a plain CNN without BatchNorm, whose usable LR range
ends at a sharp edge: with SGD at max_lr 0.1 it reaches ~97%, at 0.3 its ReLUs die mid-run and
it falls back to chance. Four 3-tap convolutions and global max pooling: a different shape of
net from the built-in mnist1d task.

Data: MNIST-1D (Greydanus 2020) generated locally by `mnist1d.data.make_dataset` with its
default arguments (4000 train, 1000 test, length 40); never downloaded.
"""

from __future__ import annotations

from torch import nn
from torch.utils.data import TensorDataset

from disciplined.zoo._mnist1d import generated_mnist1d

WIDTH = 32  # channels: the paper's CNN uses 25; 32 still trains in ~5 s

optimizer = "sgd"
batch_size = 100
epochs = 20  # 800 steps: 1cycle's accuracy levels off in the last quarter at max_lr 0.1


def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    return generated_mnist1d()


def build_model() -> nn.Module:
    layers: list[nn.Module] = [nn.Unflatten(1, (1, 40))]
    c_in = 1
    for stride in (1, 2, 1, 2):  # length 40 -> 20 -> 10
        layers += [nn.Conv1d(c_in, WIDTH, 3, stride=stride, padding=1), nn.ReLU()]
        c_in = WIDTH
    layers += [nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(WIDTH, 10)]
    return nn.Sequential(*layers)
