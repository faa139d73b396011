"""What the Lightning and Hugging Face integrations share: a policy (1cycle by default) as a
torch scheduler on an optimizer the framework built, and a range test's sweep on it, with
the RNGs left as they were. The framework modules only say when to call these."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator

import numpy as np
import torch

from . import schedules
from .defaults import END_LR, MOMENTUM, NUM_STEPS, START_LR
from .engine import rng_state, set_rng_state
from .hyper import HyperScheduler
from .policies import check_hyperparameters, policy_schedules
from .range_test import Mode, SweepRecord


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
            SweepRecord(sweep, mom))


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
