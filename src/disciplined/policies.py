"""Named LR policies, the paper's and its baselines, as (lr, momentum) schedules over a
training's steps. Pure: built from `schedules` alone, no torch."""

from __future__ import annotations

import math
from typing import Literal, get_args

from . import schedules
from .defaults import CYCLIC_DIV, MOMENTUM

Policy = Literal["one-cycle", "one-cycle-cos", "clr", "sgdr", "step", "inv", "constant"]
POLICIES: tuple[Policy, ...] = get_args(Policy)
# Caffe's `inv` defaults, the paper's LeNet baseline.
INV_GAMMA, INV_POWER = 1e-4, 0.75


def check_policy(policy: str) -> Policy:
    """`policy` if it names a policy, else a ValueError listing them."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    return policy  # narrowed by the check above


def check_hyperparameters(*, max_lr: float | None = None,
                          momentum: tuple[float, float] | None = None,
                          weight_decay: float | None = None,
                          batch_size: int | None = None) -> None:
    """A ValueError naming the first value no optimizer can take (torch's own message names
    no option and comes only after the data has loaded)."""
    if max_lr is not None and not (math.isfinite(max_lr) and max_lr > 0):
        raise ValueError(f"max_lr must be a number > 0, got {max_lr:g}")
    if momentum is not None and not all(0 <= m < 1 for m in momentum):
        raise ValueError("momentum (beta1 for Adam) must lie in [0, 1), got "
                         + ", ".join(f"{m:g}" for m in momentum))
    if weight_decay is not None and not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay:g}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def policy_schedules(policy: str, total_steps: int, max_lr: float, *,
                     momentum: tuple[float, float] = MOMENTUM,
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
    check_policy(policy)
    high, low = momentum
    lr: schedules.Schedule
    if policy in ("one-cycle", "one-cycle-cos"):
        anneal = "linear" if policy == "one-cycle" else "cos"
        if total_steps * schedules.PCT_START <= 1:  # the schedule's own error names no cause
            fewest = math.floor(1 / schedules.PCT_START) + 1
            raise ValueError(
                f"1cycle needs at least {fewest} optimizer steps (a warm-up and an anneal); "
                f"this training has {total_steps}: train more epochs, use a smaller batch "
                f"size, or give the task more training samples")
        lr = schedules.one_cycle(total_steps, max_lr, anneal=anneal)
        if cycle_momentum:
            return lr, schedules.one_cycle_momentum(total_steps, max_momentum=high,
                                                    base_momentum=low, anneal=anneal)
    elif policy == "clr":
        half = max(1, min(4 * steps_per_epoch, total_steps // 2))
        lr = schedules.triangular(max_lr / CYCLIC_DIV, max_lr, half)
        if cycle_momentum:
            return lr, schedules.cyclic_momentum(low, high, half)
    elif policy == "sgdr":
        lr = schedules.cosine_restarts(max_lr, 0.0, max(1, total_steps // 7), 2)
    elif policy == "step":
        lr = schedules.step(max_lr, 0.1, max(1, math.ceil(total_steps / 3)))
    elif policy == "inv":
        lr = schedules.inv(max_lr, INV_GAMMA, INV_POWER)
    else:  # constant
        lr = schedules.constant(max_lr)
    if cycle_momentum and policy != "constant":
        return lr, schedules.mirror(lr, low, high)
    return lr, schedules.constant(high)
