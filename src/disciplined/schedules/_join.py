"""Composing schedules: `join` (as optax's `join_schedules`), `warmup` and `mirror`."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

from ._base import (
    Schedule,
    check_finite,
    check_int,
    check_ordered,
    from_dict,
    register,
    set_fields,
)
from ._basic import Linear


@register("join")
@dataclasses.dataclass(frozen=True)
class Join(Schedule):
    """`schedules[i]` runs from `boundaries[i-1]` (0 for the first), counting its own steps
    from 0 there."""

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]
    _offsets: tuple[int, ...] = dataclasses.field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        schedules = tuple(self.schedules)
        boundaries = tuple(check_int("boundaries[i]", b, 1) for b in self.boundaries)
        if not schedules or not all(isinstance(s, Schedule) for s in schedules):
            raise ValueError(f"schedules must be a non-empty list of schedules, got {schedules!r}")
        if len(boundaries) != len(schedules) - 1:
            raise ValueError(
                f"boundaries must hold one step fewer than schedules: {len(schedules)} "
                f"schedules need {len(schedules) - 1} boundaries, got {len(boundaries)}"
            )
        if any(b <= a for a, b in itertools.pairwise(boundaries)):
            raise ValueError(f"boundaries must be strictly increasing, got {list(boundaries)}")
        set_fields(self, schedules=schedules, boundaries=boundaries, _offsets=(0, *boundaries))

    @property
    def total_steps(self) -> int | None:
        last = self.schedules[-1].total_steps
        return None if last is None else self._offsets[-1] + last

    def _at(self, step: int) -> float:
        i = bisect.bisect_right(self.boundaries, step)
        return self.schedules[i]._at(step - self._offsets[i])

    def bounds(self) -> tuple[float, float]:
        """A superset: each part's full range, even where the join cuts a part short."""
        parts = [s.bounds() for s in self.schedules]
        return (min(p[0] for p in parts), max(p[1] for p in parts))

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> Schedule:
        parts = tuple(from_dict(s) for s in fields.pop("schedules"))
        return cls(parts, tuple(fields.pop("boundaries")), **fields)


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Join:
    """Run `schedules` one after another, switching at the steps in `boundaries`.

    Each schedule sees its own step count, starting at 0 at its boundary.
    """
    return Join(tuple(schedules), tuple(boundaries))


def warmup(schedule: Schedule, warmup_steps: int, start: float = 0.0) -> Join:
    """Rise linearly from `start` to `schedule(0)` over `warmup_steps` steps, then follow
    `schedule`: the step after the warm-up is exactly `schedule(0)`."""
    warmup_steps = check_int("warmup_steps", warmup_steps, 1)
    ramp = Linear(check_finite("start", start), schedule(0), warmup_steps + 1)
    return Join((ramp, schedule), (warmup_steps,))


@register("mirror")
@dataclasses.dataclass(frozen=True)
class Mirror(Schedule):
    """`high` where `schedule` is at its lowest, `low` where it is at its highest, linear in
    between: cyclical momentum for any LR schedule (Smith 2018, Section 4.3)."""

    schedule: Schedule
    low: float
    high: float
    _span: tuple[float, float] = dataclasses.field(
        default=(0.0, 0.0), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise ValueError(f"schedule must be a schedule, got {self.schedule!r}")
        low, high = check_ordered("low", self.low, "high", self.high)
        bottom, top = self.schedule.bounds()
        set_fields(self, low=low, high=high, _span=(bottom, top))

    @property
    def total_steps(self) -> int | None:
        return self.schedule.total_steps

    def _at(self, step: int) -> float:
        bottom, top = self._span
        if not top > bottom or top == float("inf"):
            return self.high
        t = (self.schedule._at(step) - bottom) / (top - bottom)
        return self.high - (self.high - self.low) * t

    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> Schedule:
        return cls(from_dict(fields.pop("schedule")), **fields)


def mirror(schedule: Schedule, low: float, high: float) -> Mirror:
    """Momentum that falls from `high` to `low` as `schedule` (an LR) rises, and back."""
    return Mirror(schedule, low, high)
