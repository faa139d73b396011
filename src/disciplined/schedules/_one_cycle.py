"""Smith's 1cycle policy and its cyclical momentum (Smith 2018, Sections 4.1 and 4.3).

The phase arithmetic reproduces torch's `OneCycleLR` operation for operation, so the values
are the same floats, while the defaults are the paper's rather than torch's.
"""

from __future__ import annotations

import dataclasses
import math

from ..defaults import BASE_MOMENTUM, MAX_MOMENTUM
from ..defaults import ONE_CYCLE_DIV as DIV_FACTOR
from ._base import (
    Schedule,
    check_choice,
    check_int,
    check_ordered,
    check_positive,
    register,
    set_fields,
)

# Smith's defaults: the cycle's two halves take ~90% of training, the rest is annihilation.
PCT_START = 0.45
# "Several orders of magnitude" below the start for the annihilation phase (same as torch).
FINAL_DIV_FACTOR = 1e4


def _phase_ends(total_steps: int, pct_start: float, three_phase: bool) -> tuple[float, ...]:
    """Last step (as torch computes it, a float) of each phase."""
    if three_phase:
        return (
            float(pct_start * total_steps) - 1,
            float(2 * pct_start * total_steps) - 2,
            float(total_steps - 1),
        )
    return (float(pct_start * total_steps) - 1, float(total_steps - 1))


def _check_cycle(obj: Schedule, total_steps: int, pct_start: float, anneal: str,
                 three_phase: bool) -> None:
    """Validate the arguments both cycles share and store them normalized."""
    total_steps = check_int("total_steps", total_steps, 2)
    check_choice("anneal", anneal, ("linear", "cos"))
    if not isinstance(three_phase, bool):
        raise ValueError(f"three_phase must be True or False, got {three_phase!r}")
    pct = check_positive("pct_start", pct_start)
    if three_phase and pct > 0.5:
        raise ValueError(f"pct_start must be in (0, 0.5] for a three-phase cycle, got {pct}")
    if not three_phase and pct >= 1:
        raise ValueError(f"pct_start must be in (0, 1) for a two-phase cycle, got {pct}")
    if pct * total_steps <= 1:
        raise ValueError(
            f"pct_start * total_steps must be > 1 so the warm-up phase has a step, got "
            f"{pct} * {total_steps}; use more total_steps or a larger pct_start"
        )
    set_fields(obj, total_steps=total_steps, pct_start=pct)


@dataclasses.dataclass(frozen=True)
class _Cycle(Schedule):
    """Piecewise anneal through the phases in `_points` (start, end) ending at `_ends`."""

    _ends: tuple[float, ...] = dataclasses.field(
        default=(), init=False, repr=False, compare=False
    )
    _points: tuple[tuple[float, float], ...] = dataclasses.field(
        default=(), init=False, repr=False, compare=False
    )
    _last: int = dataclasses.field(default=0, init=False, repr=False, compare=False)
    _cos: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)

    def _setup(self, total_steps: int, pct_start: float, anneal: str, three_phase: bool,
               points: tuple[tuple[float, float], ...]) -> None:
        set_fields(
            self,
            _ends=_phase_ends(total_steps, pct_start, three_phase),
            _points=points,
            _last=total_steps - 1,
            _cos=anneal == "cos",
        )

    def _at(self, step: int) -> float:
        # Both ends exact (torch's cos anneal can be one ulp off there); all else as torch.
        if step >= self._last:
            return self._points[-1][1]
        if step == 0:
            return self._points[0][0]
        begin = 0.0
        last_phase = len(self._ends) - 1
        for i, end in enumerate(self._ends):
            if step <= end or i == last_phase:
                pct = (step - begin) / (end - begin)
                start, stop = self._points[i]
                if self._cos:
                    value = stop + (start - stop) / 2.0 * (math.cos(math.pi * pct) + 1)
                else:
                    value = (stop - start) * pct + start
                # within the phase's ends: rounding can overshoot them by an ulp (hypothesis
                # found max_lr + 1 ulp at a step just past a peak)
                return min(max(value, min(start, stop)), max(start, stop))
            begin = end
        raise AssertionError("unreachable: the last phase always matches")

    def bounds(self) -> tuple[float, float]:
        ends = [v for pair in self._points for v in pair]
        return (min(ends), max(ends))


@register("one_cycle")
@dataclasses.dataclass(frozen=True)
class OneCycle(_Cycle):
    total_steps: int
    max_lr: float
    pct_start: float = PCT_START
    div_factor: float = DIV_FACTOR
    final_div_factor: float = FINAL_DIV_FACTOR
    anneal: str = "linear"
    three_phase: bool = True

    def __post_init__(self) -> None:
        _check_cycle(self, self.total_steps, self.pct_start, self.anneal, self.three_phase)
        max_lr = check_positive("max_lr", self.max_lr)
        div = check_positive("div_factor", self.div_factor)
        final_div = check_positive("final_div_factor", self.final_div_factor)
        set_fields(self, max_lr=max_lr, div_factor=div, final_div_factor=final_div)
        initial = max_lr / div
        final = initial / final_div
        points: tuple[tuple[float, float], ...]
        if self.three_phase:
            points = ((initial, max_lr), (max_lr, initial), (initial, final))
        else:
            points = ((initial, max_lr), (max_lr, final))
        self._setup(self.total_steps, self.pct_start, self.anneal, self.three_phase, points)

    @property
    def initial_lr(self) -> float:
        return self._points[0][0]

    @property
    def min_lr(self) -> float:
        return self._points[-1][1]


@register("one_cycle_momentum")
@dataclasses.dataclass(frozen=True)
class OneCycleMomentum(_Cycle):
    total_steps: int
    max_momentum: float = MAX_MOMENTUM
    base_momentum: float = BASE_MOMENTUM
    pct_start: float = PCT_START
    anneal: str = "linear"
    three_phase: bool = True

    def __post_init__(self) -> None:
        _check_cycle(self, self.total_steps, self.pct_start, self.anneal, self.three_phase)
        low, high = check_ordered("base_momentum", self.base_momentum,
                                  "max_momentum", self.max_momentum)
        set_fields(self, max_momentum=high, base_momentum=low)
        points: tuple[tuple[float, float], ...]
        if three_phase := self.three_phase:
            points = ((high, low), (low, high), (high, high))
        else:
            points = ((high, low), (low, high))
        self._setup(self.total_steps, self.pct_start, self.anneal, three_phase, points)


def one_cycle(
    total_steps: int,
    max_lr: float,
    *,
    pct_start: float = PCT_START,
    div_factor: float = DIV_FACTOR,
    final_div_factor: float = FINAL_DIV_FACTOR,
    anneal: str = "linear",
    three_phase: bool = True,
) -> OneCycle:
    """The 1cycle learning rate over `total_steps` optimizer steps (Smith 2018, Section 4.1).

    Three phases by default: from `max_lr / div_factor` up to `max_lr` in `pct_start` of the
    steps, symmetrically back down, then the annihilation phase down to
    `max_lr / div_factor / final_div_factor`. With `three_phase=False` it is torch's two-phase
    variant. Same arguments, same values as `torch.optim.lr_scheduler.OneCycleLR`.
    """
    return OneCycle(total_steps, max_lr, pct_start, div_factor, final_div_factor, anneal,
                    three_phase)


def one_cycle_momentum(
    total_steps: int,
    *,
    max_momentum: float = MAX_MOMENTUM,
    base_momentum: float = BASE_MOMENTUM,
    pct_start: float = PCT_START,
    anneal: str = "linear",
    three_phase: bool = True,
) -> OneCycleMomentum:
    """Cyclical momentum to pair with `one_cycle` (Smith 2018, Section 4.3).

    Falls from `max_momentum` to `base_momentum` while the LR rises, climbs back while it
    falls, and stays at `max_momentum` during annihilation. Also Adam's beta1.
    """
    return OneCycleMomentum(total_steps, max_momentum, base_momentum, pct_start, anneal,
                            three_phase)
