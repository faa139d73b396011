"""MNIST-1D generated locally, shared by the built-in `mnist1d` tasks and the zoo's MNIST-1D
task files (a helper, not a task)."""

from __future__ import annotations

import functools
import random

import numpy as np
import torch
from torch.utils.data import TensorDataset


@functools.lru_cache(maxsize=1)
def generated_mnist1d() -> tuple[TensorDataset, TensorDataset]:
    """MNIST-1D from `mnist1d.data.make_dataset` (default arguments and seed: 4000 train, 1000
    test, length 40); never downloads. Raises ImportError without the mnist1d package."""
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset seeds numpy's and Python's global RNGs; keep the caller's untouched.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    def tensors(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.tensor(x, dtype=torch.float32),
                             torch.tensor(y, dtype=torch.long))

    return tensors(data["x"], data["y"]), tensors(data["x_test"], data["y_test"])
