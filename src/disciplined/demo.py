"""The first demo: 1cycle with cyclical momentum on scikit-learn's bundled digits, in a plain
PyTorch loop built only from `schedules` and `HyperScheduler`.

Until the engine and `tune` exist, this is also what the README's `make demo` runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch
from torch import nn

from .hyper import HyperScheduler
from .schedules import Schedule
from .tasks import digits_cnn, digits_datasets

BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class DigitsData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """Per-epoch validation accuracy and loss, and the wall time of the whole run."""

    val_accuracy: list[float]
    val_loss: list[float]
    steps: int
    seconds: float

    @property
    def final_accuracy(self) -> float:
        return self.val_accuracy[-1]


def load_digits_split(seed: int = 0) -> DigitsData:
    """The digits task's data (bundled with scikit-learn) as plain tensors."""
    train, val = digits_datasets(seed)
    return DigitsData(*train.tensors, *val.tensors)


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def train_digits(
    lr: Schedule,
    momentum: Schedule | None = None,
    *,
    epochs: int = 10,
    weight_decay: float = 5e-4,
    seed: int = 0,
    data: DigitsData | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> DemoResult:
    """Train `digits_cnn` with SGD for `epochs` epochs under the given schedules (per step).

    Same `seed`, same initial weights and batch order, so schedules compare fairly.
    `on_step(step, train_loss)` and `on_epoch(epoch, val_loss, val_accuracy)` report progress.
    """
    data = data or load_digits_split()
    with torch.random.fork_rng():  # leave the caller's global RNG as it was
        torch.manual_seed(seed)
        model = digits_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9,
                                weight_decay=weight_decay)
    scheduler = HyperScheduler(optimizer, lr=lr, momentum=momentum)
    order_rng = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    losses, accuracies, step = [], [], 0
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=order_rng)
        for i in range(0, n, BATCH_SIZE):
            batch = order[i:i + BATCH_SIZE]
            loss = nn.functional.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if on_step is not None:
                on_step(step, loss.item())
        val_loss, val_acc = _evaluate(model, data.x_val, data.y_val)
        losses.append(val_loss)
        accuracies.append(val_acc)
        if on_epoch is not None:
            on_epoch(epoch, val_loss, val_acc)
    return DemoResult(accuracies, losses, step, time.perf_counter() - start)


def steps_per_epoch(data: DigitsData) -> int:
    return -(-len(data.y_train) // BATCH_SIZE)
