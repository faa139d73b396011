"""Named LR policies (the paper's and its baselines) and a one-call training of a task."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from . import distributed, schedules
from .engine import History, Trainer, build_optimizer
from .hyper import HyperScheduler
from .tasks import Task

POLICIES = ("one-cycle", "one-cycle-cos", "clr", "sgdr", "step", "inv", "constant")
# Caffe's `inv` defaults, the paper's LeNet baseline.
INV_GAMMA, INV_POWER = 1e-4, 0.75


def policy_schedules(policy: str, total_steps: int, max_lr: float, *,
                     momentum: tuple[float, float] = (0.95, 0.85),
                     steps_per_epoch: int = 1,
                     cycle_momentum: bool = True) -> tuple[schedules.Schedule,
                                                           schedules.Schedule]:
    """(lr, momentum) schedules for a named policy over `total_steps` optimizer steps.

    one-cycle / one-cycle-cos: 1cycle, linear or cosine anneal; clr: triangular between max/4
    and max, half a cycle of ~4 epochs (Smith 2017: 2-10 epochs); sgdr: cosine restarts with
    cycles doubling (1+2+4 sevenths of training); step: /10 at 1/3 and 2/3 of training; inv:
    Caffe's inv; constant. With `cycle_momentum`, momentum mirrors the LR between
    `momentum[0]` (at the lowest LR) and `momentum[1]` (at the highest), else it is held at
    `momentum[0]`.
    """
    high, low = momentum
    lr: schedules.Schedule
    if policy in ("one-cycle", "one-cycle-cos"):
        anneal = "linear" if policy == "one-cycle" else "cos"
        lr = schedules.one_cycle(total_steps, max_lr, anneal=anneal)
        if cycle_momentum:
            return lr, schedules.one_cycle_momentum(total_steps, max_momentum=high,
                                                    base_momentum=low, anneal=anneal)
    elif policy == "clr":
        half = max(1, min(4 * steps_per_epoch, total_steps // 2))
        lr = schedules.triangular(max_lr / 4, max_lr, half)
        if cycle_momentum:
            return lr, schedules.cyclic_momentum(low, high, half)
    elif policy == "sgdr":
        lr = schedules.cosine_restarts(max_lr, 0.0, max(1, total_steps // 7), 2)
    elif policy == "step":
        lr = schedules.step(max_lr, 0.1, max(1, math.ceil(total_steps / 3)))
    elif policy == "inv":
        lr = schedules.inv(max_lr, INV_GAMMA, INV_POWER)
    elif policy == "constant":
        lr = schedules.constant(max_lr)
    else:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if cycle_momentum and policy != "constant":
        return lr, schedules.mirror(lr, low, high)
    return lr, schedules.constant(high)


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
    history.json, curves.png and model.pt there (rank 0 only, under torchrun)."""
    train_data, val_data = task.datasets()
    model = task.model(seed)
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
    if out is not None and distributed.world().is_main:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text(history.to_json())
        history.plot(out / "curves.png")
        torch.save(model.state_dict(), out / "model.pt")
    return TrainResult(history, model, lr, mom)
