"""Fashion-MNIST, 3000 training images, a CNN with BatchNorm, SGD.

Covers: image classification by a CNN with BatchNorm in a small-data, overfitting-prone
regime: two BatchNorm convolutions and a wide fully connected layer (~200k parameters) on 3000
images. At max_lr 0.1 the validation loss bottoms out mid-run and ends higher (~0.47, ~87%
accuracy); weight decay 5e-4..2e-3 lowers that final loss to 0.40-0.45, while the accuracy
moves by less than a point (3 seeds). Costs ~12 s on one thread: the zoo's dearest task.

Data: Debian's `dataset-fashion-mnist` (the gzipped IDX files under
/usr/share/datasets/fashion-mnist); 3000 training images drawn with a fixed seed from its 60000,
validated on the first 2000 test images. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
SEED = 0
N_TRAIN = 3000  # small enough to overfit and to train in ~12 s; big enough for ~87% accuracy
N_VAL = 2000  # +-0.75 points of binomial noise at 87%: fine enough to rank decisions
WIDTH = 16  # channels of the first convolution, doubled once: cheap on one thread
HIDDEN = 128  # 1568 -> 128: ~200k parameters for 3000 images, over-parameterised on purpose

optimizer = "sgd"
batch_size = 128
epochs = 15  # ~360 steps: where 1cycle's validation accuracy levels off at this size


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (the MNIST format), gzipped."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load(stem: str) -> np.ndarray:
    path = DATA_DIR / f"{stem}-ubyte.gz"
    if not path.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {path}: install it with "
            f"`apt-get install dataset-fashion-mnist`")
    return _read_idx(path)


@functools.lru_cache(maxsize=1)
def build_datasets() -> tuple[TensorDataset, TensorDataset]:
    def images(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32).unsqueeze(1) / 255.0

    x, y = _load("train-images-idx3"), _load("train-labels-idx1")
    pick = np.random.default_rng(SEED).permutation(len(y))[:N_TRAIN]
    x_val, y_val = _load("t10k-images-idx3")[:N_VAL], _load("t10k-labels-idx1")[:N_VAL]
    return (TensorDataset(images(x[pick]), torch.tensor(y[pick], dtype=torch.long)),
            TensorDataset(images(x_val), torch.tensor(y_val, dtype=torch.long)))


def _block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU()]


def build_model() -> nn.Module:
    # 28 -> 14 (a strided first convolution: a quarter of the cost of pooling after it) -> 7,
    # then a wide fully connected layer that holds most of the parameters and can memorise
    return nn.Sequential(*_block(1, WIDTH, stride=2), *_block(WIDTH, 2 * WIDTH), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(2 * WIDTH * 7 * 7, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, 10))
