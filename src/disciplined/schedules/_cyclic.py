"""Cyclical learning rates (Smith 2017) and SGDR's cosine annealing with warm restarts.

The cycle arithmetic follows torch's `CyclicLR` and `CosineAnnealingWarmRestarts` operation for
operation, so the values are the same floats.
"""

from __future__ import annotations

import dataclasses
import math

from ._base import (
    Schedule,
    check_choice,
    check_int,
    check_ordered,
    check_positive,
    register,
    set_fields,
)

MODES = ("triangular", "triangular2", "exp_range")


@dataclasses.dataclass(frozen=True)
class _Cyclic(Schedule):
    """A triangle wave between `_low` and `_high` whose height shrinks by mode."""

    _total: float = dataclasses.field(default=0.0, init=False, repr=False, compare=False)
    _ratio: float = dataclasses.field(default=0.0, init=False, repr=False, compare=False)
    _low: float = dataclasses.field(default=0.0, init=False, repr=False, compare=False)
    _high: float = dataclasses.field(default=0.0, init=False, repr=False, compare=False)
    _mode: str = dataclasses.field(default="triangular", init=False, repr=False, compare=False)
    _gamma: float = dataclasses.field(default=1.0, init=False, repr=False, compare=False)
    total_steps = None

    def _setup(self, low: float, high: float, up: int, down: int | None, mode: str,
               gamma: float) -> None:
        check_choice("mode", mode, MODES)
        up = check_int("step_size_up", up, 1)
        given_down = None if down is None else check_int("step_size_down", down, 1)
        down = up if given_down is None else given_down
        gamma = check_positive("gamma", gamma)
        set_fields(self, step_size_up=up, step_size_down=given_down, gamma=gamma)
        if gamma > 1:
            raise ValueError(f"gamma must be in (0, 1] (the cycle's height decays), got {gamma}")
        total = float(up) + float(down)
        set_fields(self, _total=total, _ratio=float(up) / total, _low=low, _high=high,
                   _mode=mode, _gamma=gamma)

    def _at(self, step: int) -> float:
        cycle = math.floor(1 + step / self._total)
        x = 1.0 + step / self._total - cycle
        factor = x / self._ratio if x <= self._ratio else (x - 1) / (self._ratio - 1)
        if self._mode == "triangular":
            scale = 1.0
        elif self._mode == "triangular2":
            scale = 1 / (2.0 ** (cycle - 1))
        else:
            scale = self._gamma**step
        return self._low + (self._high - self._low) * factor * scale

    @property
    def cycle_steps(self) -> int:
        """Steps in one full cycle (up plus down)."""
        return int(self._total)

    def bounds(self) -> tuple[float, float]:
        return (min(self._low, self._high), max(self._low, self._high))


@register("cyclic")
@dataclasses.dataclass(frozen=True)
class Cyclic(_Cyclic):
    base_lr: float
    max_lr: float
    step_size_up: int
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        low, high = check_ordered("base_lr", self.base_lr, "max_lr", self.max_lr)
        set_fields(self, base_lr=low, max_lr=high)
        self._setup(low, high, self.step_size_up, self.step_size_down, self.mode, self.gamma)


@register("cyclic_momentum")
@dataclasses.dataclass(frozen=True)
class CyclicMomentum(_Cyclic):
    """Momentum mirrored to a cyclic LR: at `max_momentum` when the LR is at its base."""

    base_momentum: float
    max_momentum: float
    step_size_up: int
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        low, high = check_ordered("base_momentum", self.base_momentum,
                                  "max_momentum", self.max_momentum)
        set_fields(self, base_momentum=low, max_momentum=high)
        # Walking from max down towards base is the LR's wave with the ends swapped; the
        # arithmetic stays identical to torch's `max - (max - base) * factor * scale`.
        self._setup(high, low, self.step_size_up, self.step_size_down, self.mode, self.gamma)


def triangular(
    base_lr: float, max_lr: float, step_size_up: int, step_size_down: int | None = None
) -> Cyclic:
    """Triangle wave between `base_lr` and `max_lr`; `step_size_up` steps to climb."""
    return Cyclic(base_lr, max_lr, step_size_up, step_size_down, "triangular")


def triangular2(
    base_lr: float, max_lr: float, step_size_up: int, step_size_down: int | None = None
) -> Cyclic:
    """Triangle wave whose height halves after every cycle."""
    return Cyclic(base_lr, max_lr, step_size_up, step_size_down, "triangular2")


def exp_range(
    base_lr: float,
    max_lr: float,
    step_size_up: int,
    step_size_down: int | None = None,
    gamma: float = 1.0,
) -> Cyclic:
    """Triangle wave whose height is scaled by `gamma ** step`."""
    return Cyclic(base_lr, max_lr, step_size_up, step_size_down, "exp_range", gamma)


def cyclic_momentum(
    base_momentum: float,
    max_momentum: float,
    step_size_up: int,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> CyclicMomentum:
    """The momentum that pairs with a cyclic LR of the same steps and mode (Smith 2018, 4.3)."""
    return CyclicMomentum(base_momentum, max_momentum, step_size_up, step_size_down, mode, gamma)


@register("cosine_restarts")
@dataclasses.dataclass(frozen=True)
class CosineRestarts(Schedule):
    """SGDR (Loshchilov & Hutter 2017): cosine from `max_lr` to `min_lr`, then restart;
    each cycle `cycle_mult` times longer than the one before."""

    max_lr: float
    min_lr: float
    first_cycle_steps: int
    cycle_mult: int = 1
    total_steps = None

    def __post_init__(self) -> None:
        low, high = check_ordered("min_lr", self.min_lr, "max_lr", self.max_lr)
        set_fields(
            self,
            max_lr=high,
            min_lr=low,
            first_cycle_steps=check_int("first_cycle_steps", self.first_cycle_steps, 1),
            cycle_mult=check_int("cycle_mult", self.cycle_mult, 1),
        )

    def _at(self, step: int) -> float:
        length = self.first_cycle_steps
        if self.cycle_mult == 1:
            into = step % length
        else:
            into = step
            while into >= length:  # cycles grow geometrically: a few dozen iterations at most
                into -= length
                length *= self.cycle_mult
        return self.min_lr + (self.max_lr - self.min_lr) * (
            1 + math.cos(math.pi * into / length)
        ) / 2

    def bounds(self) -> tuple[float, float]:
        return (self.min_lr, self.max_lr)


def cosine_restarts(
    max_lr: float, min_lr: float, first_cycle_steps: int, cycle_mult: int = 1
) -> CosineRestarts:
    """Cosine annealing with warm restarts; same values as torch's
    `CosineAnnealingWarmRestarts(T_0=first_cycle_steps, T_mult=cycle_mult, eta_min=min_lr)`."""
    return CosineRestarts(max_lr, min_lr, first_cycle_steps, cycle_mult)
