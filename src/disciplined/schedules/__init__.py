"""Schedules: hyper-parameter values as pure functions of the optimizer step.

Conventions, for every schedule here:

- Steps are 0-indexed optimizer updates. `sched(k)` is the value for the optimizer step taken
  after `k` scheduler steps, as in torch: `sched(0)` is set before the first update.
- A schedule with `total_steps` is defined on `0 .. total_steps - 1`; past that it holds its
  value at `total_steps - 1` (torch's OneCycleLR raises there instead). Negative steps raise.
- Schedules are frozen dataclasses: compare by value, pickle, and round-trip through
  `to_dict()` / `from_dict()` (also through JSON).
- Where a torch scheduler has the same definition, the values are the same floats.
- Nothing here imports torch; `disciplined.hyper.HyperScheduler` applies schedules to an
  optimizer.
"""

from collections.abc import Callable
from typing import Literal

from ._base import Schedule, from_dict, kinds
from ._basic import (
    Constant,
    Cosine,
    Exponential,
    Inv,
    Linear,
    MultiStep,
    Step,
    constant,
    cosine,
    exponential,
    inv,
    linear,
    lr_range,
    multistep,
    step,
)
from ._cyclic import (
    CosineRestarts,
    Cyclic,
    CyclicMomentum,
    cosine_restarts,
    cyclic_momentum,
    exp_range,
    triangular,
    triangular2,
)
from ._join import Join, Mirror, join, mirror, warmup
from ._one_cycle import PCT_START, OneCycle, OneCycleMomentum, one_cycle, one_cycle_momentum

Quantity = Literal["lr", "momentum"]

# The constructors built from plain numbers (what `disciplined schedule NAME key=value ...`
# offers), each with the hyper-parameter its values are meant for. `join`, `warmup` and
# `mirror` take schedules as arguments, so they are composed in Python instead.
CONSTRUCTORS: dict[str, tuple[Callable[..., Schedule], Quantity]] = {
    "constant": (constant, "lr"),
    "linear": (linear, "lr"),
    "cosine": (cosine, "lr"),
    "exponential": (exponential, "lr"),
    "lr_range": (lr_range, "lr"),
    "step": (step, "lr"),
    "multistep": (multistep, "lr"),
    "inv": (inv, "lr"),
    "one_cycle": (one_cycle, "lr"),
    "one_cycle_momentum": (one_cycle_momentum, "momentum"),
    "triangular": (triangular, "lr"),
    "triangular2": (triangular2, "lr"),
    "exp_range": (exp_range, "lr"),
    "cyclic_momentum": (cyclic_momentum, "momentum"),
    "cosine_restarts": (cosine_restarts, "lr"),
}

__all__ = [
    "CONSTRUCTORS",
    "PCT_START",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "CyclicMomentum",
    "Exponential",
    "Inv",
    "Join",
    "Linear",
    "Mirror",
    "MultiStep",
    "OneCycle",
    "OneCycleMomentum",
    "Quantity",
    "Schedule",
    "Step",
    "constant",
    "cosine",
    "cosine_restarts",
    "cyclic_momentum",
    "exp_range",
    "exponential",
    "from_dict",
    "inv",
    "join",
    "kinds",
    "linear",
    "lr_range",
    "mirror",
    "multistep",
    "one_cycle",
    "one_cycle_momentum",
    "step",
    "triangular",
    "triangular2",
    "warmup",
]
