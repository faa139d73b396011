"""Trials: a plain, picklable specification in, a frozen result out (Optuna's vocabulary).

A trial trains one complete configuration from the task's seeded initial weights, in the
seeded data order, so trials that differ in one hyper-parameter differ in nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from typing import Any

import torch

from .diagnose import Diagnosis, diagnose
from .engine import History, Trainer, build_optimizer
from .hyper import HyperScheduler
from .policies import policy_schedules
from .tasks import load_task

# Evaluations per trial when the spec does not say: enough for diagnose() to read a trend.
EVALS_PER_TRIAL = 12
# Short runs evaluate on a fixed subset of this many validation samples: twelve passes over
# Fashion-MNIST's 10,000 test images cost as much as the training of a short run.
EVAL_SAMPLES = 2048


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long a trial trains: the first of epochs, optimizer steps or wall seconds."""

    epochs: float | None = None
    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs is None and self.steps is None and self.seconds is None:
            raise ValueError("a budget needs epochs, steps or seconds")


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """Everything one trial needs; plain data, so any executor can ship it."""

    task: str
    max_lr: float
    budget: Budget
    policy: str = "one-cycle"
    momentum: tuple[float, float] = (0.95, 0.85)
    cycle_momentum: bool = True
    weight_decay: float = 5e-4
    batch_size: int | None = None
    seed: int = 0
    eval_every: int | None = None
    eval_samples: int | None = EVAL_SAMPLES
    data_dir: str | None = None
    label: str = ""

    def with_(self, **changes: Any) -> TrialSpec:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """A finished trial: `state` is "complete", "failed" (then `error` says why) or "lost"
    (its Ray worker died each time it was tried: infrastructure, not the trial's outcome);
    `worker` names the Ray node that ran it ("" when it ran in this process)."""

    spec: TrialSpec
    state: str
    error: str | None
    history: History | None
    diagnosis: Diagnosis | None
    val_loss: float | None
    val_metric: float | None
    steps: int
    seconds: float
    worker: str = ""

    @property
    def label(self) -> str:
        return self.spec.label

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["diagnosis"] = None if self.diagnosis is None else self.diagnosis.to_dict()
        return out


def total_steps(spec: TrialSpec, steps_per_epoch: int) -> int:
    """Optimizer steps the schedules span: the step or epoch budget (a seconds-only budget
    must come with steps, which the batch-size search computes from measured throughput)."""
    candidates = []
    if spec.budget.steps is not None:
        candidates.append(spec.budget.steps)
    if spec.budget.epochs is not None:
        candidates.append(math.ceil(spec.budget.epochs * steps_per_epoch))
    if not candidates:
        raise ValueError("a trial's schedules need a step or epoch budget to span")
    return max(2, min(candidates))


def build_trainer(spec: TrialSpec, *, device: str | None = None,
                  progress: bool = False) -> tuple[Trainer, int]:
    """The trainer for a spec, schedules attached, and the steps they span."""
    task = load_task(spec.task, data_dir=spec.data_dir)
    train, val = task.datasets()
    model = task.model(spec.seed)
    high = spec.momentum[0]
    optimizer = build_optimizer(task.optimizer, model, lr=spec.max_lr, momentum=high,
                                weight_decay=spec.weight_decay)
    trainer = Trainer(model, optimizer, task.loss_fn, train, val, metric=task.metric,
                      batch_size=spec.batch_size or task.batch_size, seed=spec.seed,
                      device=device, progress=progress, eval_samples=spec.eval_samples)
    trainer.label = spec.label
    steps = total_steps(spec, trainer.steps_per_epoch)
    trainer.eval_every = spec.eval_every or max(1, steps // EVALS_PER_TRIAL)
    lr, mom = policy_schedules(spec.policy, steps, spec.max_lr, momentum=spec.momentum,
                               steps_per_epoch=trainer.steps_per_epoch,
                               cycle_momentum=spec.cycle_momentum)
    trainer.scheduler = HyperScheduler(optimizer, lr=lr, momentum=mom)
    return trainer, steps


def result_from(spec: TrialSpec, history: History, seconds: float) -> TrialResult:
    return TrialResult(
        spec, "complete", None, history, diagnose(history),
        history.val_loss[-1] if history.val_loss else None,
        history.val_metric[-1] if history.val_metric else None,
        len(history.step), seconds)


def run_trial(spec: TrialSpec, *, device: str | None = None,
              progress: bool = False) -> TrialResult:
    """Train one spec; any error becomes a failed result, recorded, never raised.
    `progress` shows a live bar (step, training and validation loss)."""
    start = time.perf_counter()
    try:
        trainer, steps = build_trainer(spec, device=device, progress=progress)
        history = trainer.run(steps=steps, seconds=spec.budget.seconds)
        return result_from(spec, history, time.perf_counter() - start)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # a failed trial is data, not a crash
        message = f"{type(err).__name__}: {err}"
        if not isinstance(err, ValueError | MemoryError | torch.OutOfMemoryError):
            message += "\n" + traceback.format_exc(limit=3)
        return TrialResult(spec, "failed", message, None, None, None, None, 0,
                           time.perf_counter() - start)
