"""What the Lightning and Hugging Face integrations share: a policy (1cycle by default) as a
torch scheduler on an optimizer the framework built, a range test's sweep on it, with the
RNGs left as they were, and a trial's history recorded as our engine records it (so that
`tune` reads a framework's trials like its own). The framework modules only say when to
call these."""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from . import schedules
from .defaults import END_LR, MOMENTUM, NUM_STEPS, START_LR
from .engine import History, StopReason, rng_state, set_rng_state
from .hyper import HyperScheduler, group_momentum
from .policies import check_hyperparameters, policy_schedules
from .range_test import Mode, SweepRecord, decay_of
from .tasks import OptimizerKind, Runner, Task, TaskError
from .trials import EVALS_PER_TRIAL, TrialSpec


def group_scales(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's LR as a fraction of the largest: a framework's discriminative LRs
    (a smaller LR for a pretrained body) keep their ratios under our schedules, whose value
    is the largest group's LR."""
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    top = max(lrs)
    if not top > 0:
        raise ValueError(f"every param group has lr {top:g}: give the optimizer a positive "
                         "lr (only the ratios between its groups are kept)")
    return [lr / top for lr in lrs]


def _has_momentum(optimizer: torch.optim.Optimizer) -> bool:
    return all("betas" in g or "momentum" in g for g in optimizer.param_groups)


def policy_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int | float,
                     max_lr: float,
                     policy: str = "one-cycle",
                     momentum: tuple[float, float] = MOMENTUM,
                     cycle_momentum: bool = True) -> HyperScheduler:
    """`policy` over `total_steps` optimizer steps on `optimizer`: the largest group's LR
    peaks at `max_lr`, the others keep their ratios to it, momentum (Adam's beta1) cycles
    between `momentum` when the optimizer has one, and weight decay is left as each group
    has it (a no-decay group for biases and norms stays at 0)."""
    check_hyperparameters(max_lr=max_lr, momentum=momentum)
    if not math.isfinite(total_steps):
        raise ValueError("the training has no end (max_epochs=-1 and no max_steps): a "
                         "1cycle needs to know its length; set max_epochs or max_steps")
    lr, mom = policy_schedules(policy, int(total_steps), max_lr, momentum=momentum,
                               cycle_momentum=cycle_momentum)
    return HyperScheduler(optimizer, lr=lr, momentum=mom if _has_momentum(optimizer) else None,
                          lr_scale=group_scales(optimizer))


def sweep_scheduler(optimizer: torch.optim.Optimizer, *, start_lr: float = START_LR,
                    end_lr: float = END_LR, num_steps: int = NUM_STEPS, mode: Mode = "exp",
                    momentum: tuple[float, float] | None = MOMENTUM
                    ) -> tuple[HyperScheduler, SweepRecord]:
    """The range test's LR sweep (and momentum sweep, when the optimizer has momentum) as a
    scheduler to step once per optimizer step, with the record its losses go to."""
    sweep = schedules.lr_range(start_lr, end_lr, num_steps, mode=mode)
    mom = None
    if momentum is not None and _has_momentum(optimizer):
        check_hyperparameters(momentum=momentum)
        mom = schedules.linear(momentum[0], momentum[1], num_steps)
    return (HyperScheduler(optimizer, lr=sweep, momentum=mom, lr_scale=group_scales(optimizer)),
            SweepRecord(sweep, mom, weight_decay=decay_of(optimizer)))


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch, numpy and Python's RNGs for what runs inside, and put every RNG back as it
    was afterwards (also on an error): a range test must not change the user's training."""
    saved = rng_state()
    try:
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        yield
    finally:
        set_rng_state(saved)


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """Every param group that decays gets `weight_decay`; a group without decay (biases and
    norms in a no-decay group) stays without, unless no group decays at all (an optimizer
    built with the default 0), and then every group gets it."""
    groups = optimizer.param_groups
    decaying = [g for g in groups if g.get("weight_decay", 0)] or groups
    for group in decaying:
        group["weight_decay"] = weight_decay


def optimizer_kind(optimizer: torch.optim.Optimizer) -> OptimizerKind | None:
    """"adamw" for an optimizer with betas, "sgd" for one with momentum, else None."""
    group = optimizer.param_groups[0]
    return "adamw" if "betas" in group else "sgd" if "momentum" in group else None


def check_optimizer(optimizer: torch.optim.Optimizer, declared: OptimizerKind,
                    where: str) -> None:
    """The task said which kind of optimizer it trains with (the weight decays tune tries
    depend on it); the framework's must be of that kind."""
    kind = optimizer_kind(optimizer)
    name = type(getattr(optimizer, "optimizer", optimizer)).__name__  # a wrapper's inner one
    if kind is None:
        raise TaskError(f"{where} trains with {name}, which has neither momentum nor betas: "
                        "tune needs SGD (with momentum) or Adam/AdamW")
    if kind != declared:
        raise TaskError(f"{where} trains with {name}, but the task says optimizer="
                        f"{declared!r}: say optimizer={kind!r} in task(...)")


def framework_task(runner: Runner, name: str, build_model: Callable[[], torch.nn.Module], *,
                   optimizer: OptimizerKind, metric: str | None,
                   epochs: float | None) -> Task:
    """The task `runner` trains: its data are the framework's (Task.datasets refuses to
    give them to our engine), its metric a logged accuracy when it names one."""
    return Task(name, build_model, _framework_data, metric="accuracy" if metric else None,
                optimizer=optimizer, source=f"{runner.framework} task {name!r}",
                epochs=epochs, runner=runner)


def _framework_data() -> Any:
    raise TaskError("a framework's task has no datasets for our engine")


def check_trial(spec: TrialSpec, framework: str) -> None:
    """What a trial on a framework's task cannot ask: the framework sets the precision."""
    if spec.amp != "auto" or spec.compile:
        raise TaskError(f"amp and compile cannot be set on a {framework} task's trial: set "
                        f"the precision and compilation in {framework}'s own settings")


def evals_every(spec: TrialSpec, steps: int) -> int:
    """Optimizer steps between a trial's evaluations, as our engine spaces them."""
    return spec.eval_every or max(1, steps // EVALS_PER_TRIAL)


# the optimizer steps a framework's speed measurement trains before it times any
MEASURE_SKIP = 2


class Recorder:
    """A framework's trial as our engine's `History`: each optimizer step's LR, momentum and
    training loss (the mean of its micro-batches), each evaluation's loss, metric and
    seconds. The framework's callback calls it; a non-finite loss asks for a stop."""

    def __init__(self, seconds: float | None = None) -> None:
        self.history = History()
        self.stop: StopReason = ""
        self.seconds = seconds  # a budget in wall seconds, else None
        self.began = time.perf_counter()
        self.step_ends: list[float] = []  # when each optimizer step ended
        self.first_batch: float | None = None
        self.eval_took: list[float] = []  # each evaluation's seconds
        self._pending: list[float] = []
        self._lr = 0.0
        self._momentum: float | None = None

    def batch_started(self, optimizer: torch.optim.Optimizer) -> None:
        if self.first_batch is None:
            self.first_batch = time.perf_counter()
        if not self._pending:  # the step's first micro-batch: the LR it trains at
            self._lr = max(float(g["lr"]) for g in optimizer.param_groups)
            self._momentum = group_momentum(optimizer.param_groups[0])

    def batch_loss(self, loss: float) -> None:
        self._pending.append(loss)

    def stepped(self, step: int) -> bool:
        """Optimizer step `step` (from 0) ended; False when training must stop."""
        if not self._pending:
            return not self.stop
        h = self.history
        loss = sum(self._pending) / len(self._pending)
        self._pending = []
        h.step.append(step)
        h.lr.append(self._lr)
        h.momentum.append(self._momentum)
        h.train_loss.append(loss)
        self.step_ends.append(time.perf_counter())
        if not math.isfinite(loss):
            self.stop = "diverged"
        elif self.seconds is not None and time.perf_counter() - self.began >= self.seconds:
            self.stop = "time"
        return not self.stop

    def evaluated(self, loss: float, metric: float | None, took: float) -> None:
        """An evaluation after the steps so far, which took `took` seconds (the history
        keeps, as our engine's does, the seconds since the start at which it ended)."""
        h = self.history
        h.eval_step.append(len(h.step))
        h.val_loss.append(loss)
        h.val_metric.append(metric)
        h.eval_seconds.append(time.perf_counter() - self.began)
        self.eval_took.append(took)

    def evaluated_last(self) -> bool:
        h = self.history
        return bool(h.eval_step) and h.eval_step[-1] == len(h.step)

    def finish(self, per_epoch: int, samples_per_step: int) -> History:
        h = self.history
        h.wall_seconds = time.perf_counter() - self.began
        h.epochs = len(h.step) / max(1, per_epoch)
        h.stop_reason = self.stop or "budget"
        if len(self.step_ends) > 1:
            trained = self.step_ends[-1] - self.step_ends[0] - sum(self.eval_took[:-1])
            if trained > 0:
                h.samples_per_second = (len(self.step_ends) - 1) * samples_per_step / trained
        return h

    def speeds(self, samples: int) -> tuple[float, float, float]:
        """A timed run's seconds per optimizer step (after the first MEASURE_SKIP, which
        pay for lazy initialisation), per sample of its last evaluation (of `samples`), and
        of its set-up (until the first batch)."""
        ends = self.step_ends
        if len(ends) <= MEASURE_SKIP + 1 or not self.eval_took:
            raise RuntimeError("the timed run trained too few steps or did not evaluate")
        step = (ends[-1] - ends[MEASURE_SKIP]) / (len(ends) - 1 - MEASURE_SKIP)
        setup = (self.first_batch or self.began) - self.began
        return step, self.eval_took[-1] / samples, setup
