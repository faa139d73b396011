"""Monotone and constant schedules: interpolations, the range test's sweep, step decays."""

from __future__ import annotations

import bisect
import dataclasses
import math

from ._base import (
    Schedule,
    check_choice,
    check_finite,
    check_int,
    check_non_negative,
    check_positive,
    register,
    set_fields,
)


@register("constant")
@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    value: float
    total_steps = None

    def __post_init__(self) -> None:
        set_fields(self, value=check_finite("value", self.value))

    def _at(self, step: int) -> float:
        return self.value

    def bounds(self) -> tuple[float, float]:
        return (self.value, self.value)


@dataclasses.dataclass(frozen=True)
class _Interpolation(Schedule):
    """From `start` (step 0) to `end` (step total_steps-1, exact), then held."""

    start: float
    end: float
    total_steps: int
    _last: int = dataclasses.field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_fields(
            self,
            start=check_finite("start", self.start),
            end=check_finite("end", self.end),
            total_steps=check_int("total_steps", self.total_steps, 2),
        )
        set_fields(self, _last=self.total_steps - 1)

    def bounds(self) -> tuple[float, float]:
        return (min(self.start, self.end), max(self.start, self.end))

    def _at(self, step: int) -> float:
        if step >= self._last:
            return self.end
        return self._between(step / self._last)

    def _between(self, t: float) -> float:
        raise NotImplementedError


@register("linear")
@dataclasses.dataclass(frozen=True)
class Linear(_Interpolation):
    def _between(self, t: float) -> float:
        return self.start + (self.end - self.start) * t


@register("cosine")
@dataclasses.dataclass(frozen=True)
class Cosine(_Interpolation):
    def _between(self, t: float) -> float:
        return self.start + (self.end - self.start) * (1.0 - math.cos(math.pi * t)) / 2.0


@register("exponential")
@dataclasses.dataclass(frozen=True)
class Exponential(_Interpolation):
    """Geometric interpolation: equal ratios between consecutive steps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("start", self.start)
        check_positive("end", self.end)

    def _between(self, t: float) -> float:
        return self.start * (self.end / self.start) ** t


def constant(value: float) -> Constant:
    """The same value at every step."""
    return Constant(value)


def linear(start: float, end: float, total_steps: int) -> Linear:
    """Straight line from `start` at step 0 to `end` at step `total_steps - 1`."""
    return Linear(start, end, total_steps)


def cosine(start: float, end: float, total_steps: int) -> Cosine:
    """Half cosine from `start` at step 0 to `end` at step `total_steps - 1`."""
    return Cosine(start, end, total_steps)


def exponential(start: float, end: float, total_steps: int) -> Exponential:
    """Geometric path from `start` to `end` (both > 0) over `total_steps` steps."""
    return Exponential(start, end, total_steps)


def lr_range(
    start_lr: float, end_lr: float, num_steps: int, mode: str = "exp"
) -> Exponential | Linear:
    """The LR range test's sweep (Smith 2018, Section 4.1): `start_lr` up to `end_lr`.

    `mode="exp"` spaces the learning rates geometrically (the usual choice over several orders
    of magnitude); `"linear"` spaces them evenly, for a finer look at a narrow range.
    """
    check_choice("mode", mode, ("exp", "linear"))
    start_lr = check_positive("start_lr", start_lr)
    end_lr = check_positive("end_lr", end_lr)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be > start_lr, got start_lr={start_lr}, end_lr={end_lr}")
    check_int("num_steps", num_steps, 2)
    return (Exponential if mode == "exp" else Linear)(start_lr, end_lr, num_steps)


@register("step")
@dataclasses.dataclass(frozen=True)
class Step(Schedule):
    """`base_lr * gamma ** (step // step_size)`: torch's StepLR, stepped per optimizer step."""

    base_lr: float
    gamma: float
    step_size: int
    total_steps = None

    def __post_init__(self) -> None:
        set_fields(
            self,
            base_lr=check_non_negative("base_lr", self.base_lr),
            gamma=check_positive("gamma", self.gamma),
            step_size=check_int("step_size", self.step_size, 1),
        )

    def _at(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)

    def bounds(self) -> tuple[float, float]:
        if self.gamma <= 1:
            return (0.0 if self.gamma < 1 else self.base_lr, self.base_lr)
        return (self.base_lr, math.inf)


@register("multistep")
@dataclasses.dataclass(frozen=True)
class MultiStep(Schedule):
    """`base_lr * gamma ** (milestones passed)`: torch's MultiStepLR (a repeated milestone
    counts once per repetition, as in torch)."""

    base_lr: float
    gamma: float
    milestones: tuple[int, ...]
    total_steps = None

    def __post_init__(self) -> None:
        milestones = tuple(
            sorted(check_int("milestones[i]", m, 1) for m in self.milestones)
        )
        if not milestones:
            raise ValueError("milestones must hold at least one step, got []")
        set_fields(
            self,
            base_lr=check_non_negative("base_lr", self.base_lr),
            gamma=check_positive("gamma", self.gamma),
            milestones=milestones,
        )

    def _at(self, step: int) -> float:
        return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, step)

    def bounds(self) -> tuple[float, float]:
        last = self.base_lr * self.gamma ** len(self.milestones)
        return (min(self.base_lr, last), max(self.base_lr, last))


@register("inv")
@dataclasses.dataclass(frozen=True)
class Inv(Schedule):
    """Caffe's `inv` policy, `base_lr * (1 + gamma*step) ** -power` (the paper's baseline)."""

    base_lr: float
    gamma: float
    power: float
    total_steps = None

    def __post_init__(self) -> None:
        set_fields(
            self,
            base_lr=check_non_negative("base_lr", self.base_lr),
            gamma=check_non_negative("gamma", self.gamma),
            power=check_non_negative("power", self.power),
        )

    def _at(self, step: int) -> float:
        return self.base_lr * (1.0 + self.gamma * step) ** -self.power

    def bounds(self) -> tuple[float, float]:
        decays = self.gamma > 0 and self.power > 0
        return (0.0 if decays else self.base_lr, self.base_lr)


def step(base_lr: float, gamma: float, step_size: int) -> Step:
    """Multiply by `gamma` every `step_size` steps."""
    return Step(base_lr, gamma, step_size)


def multistep(base_lr: float, gamma: float, milestones: list[int] | tuple[int, ...]) -> MultiStep:
    """Multiply by `gamma` at each step listed in `milestones`."""
    return MultiStep(base_lr, gamma, tuple(milestones))


def inv(base_lr: float, gamma: float, power: float) -> Inv:
    """Caffe's `inv` decay; the paper's MNIST/LeNet baseline uses gamma=1e-4, power=0.75."""
    return Inv(base_lr, gamma, power)
