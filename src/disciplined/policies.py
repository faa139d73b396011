"""Named LR policies (the paper's and its baselines) and a one-call training of a task."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from . import schedules
from .engine import History, Trainer, build_optimizer
from .hyper import HyperScheduler
from .tasks import Task

POLICIES = ("one-cycle", "clr", "sgdr", "step", "inv", "constant")
# Caffe's `inv` defaults, the paper's LeNet baseline.
INV_GAMMA, INV_POWER = 1e-4, 0.75


def policy_schedules(policy: str, total_steps: int, max_lr: float, *,
                     momentum: tuple[float, float] = (0.95, 0.85),
                     steps_per_epoch: int = 1) -> tuple[schedules.Schedule, schedules.Schedule]:
    """(lr, momentum) schedules for a named policy over `total_steps` optimizer steps.

    one-cycle: 1cycle with cyclical momentum; clr: triangular between max/4 and max, half a
    cycle of ~4 epochs (Smith 2017: 2-10 epochs), with cyclic momentum; sgdr: cosine restarts,
    cycles doubling (1+2+4 sevenths of training); step: /10 at 1/3 and 2/3 of training; inv:
    Caffe's inv. All but one-cycle and clr hold momentum at `momentum[0]`.
    """
    high, low = momentum
    if policy == "one-cycle":
        return (schedules.one_cycle(total_steps, max_lr),
                schedules.one_cycle_momentum(total_steps, max_momentum=high, base_momentum=low))
    if policy == "clr":
        half = max(1, min(4 * steps_per_epoch, total_steps // 2))
        return (schedules.triangular(max_lr / 4, max_lr, half),
                schedules.cyclic_momentum(low, high, half))
    constant_momentum = schedules.constant(high)
    if policy == "sgdr":
        return schedules.cosine_restarts(max_lr, 0.0, max(1, total_steps // 7), 2), \
            constant_momentum
    if policy == "step":
        return schedules.step(max_lr, 0.1, max(1, math.ceil(total_steps / 3))), \
            constant_momentum
    if policy == "inv":
        return schedules.inv(max_lr, INV_GAMMA, INV_POWER), constant_momentum
    if policy == "constant":
        return schedules.constant(max_lr), constant_momentum
    raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    history: History
    model: torch.nn.Module
    lr: schedules.Schedule
    momentum: schedules.Schedule


def train_task(task: Task, *, policy: str = "one-cycle", max_lr: float,
               momentum: tuple[float, float] = (0.95, 0.85), weight_decay: float = 5e-4,
               epochs: float = 5, batch_size: int | None = None, seed: int = 0,
               device: str | None = None, progress: bool = False,
               out: str | Path | None = None) -> TrainResult:
    """Train `task` from fresh weights with a named policy; with `out`, write
    history.json, curves.png and model.pt there."""
    train_data, val_data = task.datasets()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = task.model()
    optimizer = build_optimizer(task.optimizer, model, lr=max_lr, momentum=momentum[0],
                                weight_decay=weight_decay)
    trainer = Trainer(model, optimizer, task.loss_fn, train_data, val_data,
                      metric=task.metric, batch_size=batch_size or task.batch_size, seed=seed,
                      device=device, progress=progress)
    total = max(2, math.ceil(epochs * trainer.steps_per_epoch))
    lr, mom = policy_schedules(policy, total, max_lr, momentum=momentum,
                               steps_per_epoch=trainer.steps_per_epoch)
    trainer.scheduler = HyperScheduler(optimizer, lr=lr, momentum=mom)
    history = trainer.run(steps=total)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(history.to_json())
        history.plot(out / "curves.png")
        torch.save(model.state_dict(), out / "model.pt")
    return TrainResult(history, model, lr, mom)
