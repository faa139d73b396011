"""Short runs that grow until they can tell: successive halving over a stage's candidates.

Every candidate trains a short 1cycle; the better half (and every candidate tied with the
best, while the budget allows) trains again twice as long, until the runs reach the stage's
longest affordable length (the final training's own length when the budget allows it: then
the short-horizon bias is gone, and the winner's run can be the final training itself).
Candidates tied within noise at the last length are decided by `prefer`, and the result
says so; a tie that no rung ever broke (the runs said nothing about the order) can be
decided by its own rule, `prefer_untold`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from .compare import Comparison
from .diagnose import Verdict
from .executors import Executor, LocalExecutor
from .trials import TrialResult, TrialSpec


class AllFailedError(ValueError):
    """Every candidate of a rung failed: there is nothing to rank."""


# How a tie is settled: from the tied candidates (in their natural order) and the verdicts
# of every ranked candidate's run at the last rung, the one to keep.
Preference = Callable[[Sequence[Any], Mapping[Any, "Verdict | None"]], Any]

# At most this many rungs (lengths) per stage: 1/8, 1/4, 1/2, 1 of the longest.
MAX_RUNGS = 4


@dataclasses.dataclass(frozen=True)
class RungPlan:
    """Each rung's length (a fraction of the final training) and how many candidates are
    planned to train at it; `cost` is the planned total in final trainings."""

    fractions: tuple[Fraction, ...]
    keep: tuple[int, ...]
    # what a run costs besides its training (set-up, evaluations), in final trainings
    overhead: float = 0.0

    @property
    def cost(self) -> float:
        return float(sum((f + self.overhead) * k
                         for f, k in zip(self.fractions, self.keep, strict=True)))


def halving_keep(n: int, rungs: int) -> tuple[int, ...]:
    """Candidates at each rung when the better half goes on, never fewer than two (a rung
    of one compares nothing): 8, 4, 2, 2."""
    keep = [n]
    for _ in range(rungs - 1):
        keep.append(min(keep[-1], max(2, math.ceil(keep[-1] / 2))))
    return tuple(keep)


def plan_rungs(n: int, budget: float, shortest: float, max_rungs: int = MAX_RUNGS,
               overhead: float = 0.0) -> RungPlan | None:
    """The plan that fits `budget` (in final trainings) with the longest last rung, then the
    fewest rungs; None when even one rung of `shortest` (the fewest steps a 1cycle needs, as
    a fraction of the final length) for every candidate does not fit. `overhead` is what
    each run costs besides its training steps, in final trainings.

    A longer last rung is preferred because only full-length runs are free of the
    short-horizon bias; fewer rungs, because each rung's halving may drop the eventual
    winner on short evidence."""
    if n < 1:
        raise ValueError(f"need at least one candidate, got {n}")
    shortest = min(shortest, 1.0)
    floor = Fraction(shortest)  # exact
    tops = [Fraction(1, 2**i) for i in range(32) if Fraction(1, 2**i) >= shortest]
    for top in [*tops, floor]:  # the shortest run allowed, when no halving of 1 fits
        for rungs in range(1, max_rungs + 1):
            first = top / 2 ** (rungs - 1)
            if first < shortest:
                break
            plan = RungPlan(tuple(first * 2**r for r in range(rungs)), halving_keep(n, rungs),
                            overhead)
            if plan.cost <= budget:
                return _filled(plan, budget)
    return None


def _filled(plan: RungPlan, budget: float) -> RungPlan:
    """The plan with every rung lengthened alike until it spends the budget (or its last
    rung reaches the full length): unspent budget is evidence not gathered."""
    if plan.fractions[-1] >= 1 or plan.cost <= 0:
        return plan
    training = plan.cost - plan.overhead * sum(plan.keep)
    stretch = min((budget - plan.overhead * sum(plan.keep)) / training,
                  1 / float(plan.fractions[-1]))
    stretch_q = Fraction(math.floor(stretch * 1000), 1000)
    if stretch_q <= 1:
        return plan
    return RungPlan(tuple(min(f * stretch_q, Fraction(1)) for f in plan.fractions), plan.keep,
                    plan.overhead)


def spread(items: Sequence[Any], k: int) -> list[Any]:
    """`k` of `items`, evenly spaced from first to last (all of them if k >= len)."""
    if k >= len(items):
        return list(items)
    if k == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


@dataclasses.dataclass(frozen=True)
class Rung:
    """One length's runs, ranked."""

    fraction: float
    comparison: Comparison

    def to_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "comparison": self.comparison.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rung:
        return cls(data["fraction"], Comparison.from_dict(data["comparison"]))


@dataclasses.dataclass(frozen=True)
class Halving:
    """What the growing short runs found: the winning candidate's key, each rung, whether
    the winner was still tied at the last length, and a sentence on how long runs had to be.
    `told_apart` is False when every rung tied all the candidates it ran; `leaders` are the
    candidates sharing the last rung's first rank."""

    winner: Any
    rungs: list[Rung]
    tied: bool
    length_note: str
    told_apart: bool = True
    leaders: tuple[Any, ...] = ()
    # the later stages whose time a tie grew into (recipe._grown), when it did
    grown: tuple[str, ...] = ()

    @property
    def last(self) -> Rung:
        return self.rungs[-1]


def _fraction_text(f: float) -> str:
    return "the full length" if f >= 1 else f"{f:.0%} of the final length"


def successive_halving(
    keys: Sequence[Any],
    spec_for: Callable[[Any, float], TrialSpec],
    plan: RungPlan,
    *,
    prefer: Preference,
    prefer_untold: Preference | None = None,
    room: Callable[[], float] | None = None,
    executor: Executor | None = None,
    pilot: Any = None,
    replan: Callable[[RungPlan], tuple[Sequence[Any], RungPlan]] | None = None,
    stop: Callable[[Comparison], bool] | None = None,
) -> Halving:
    """Run `keys` (candidate values, in their natural order: ascending LR, weight decay...)
    through the rungs of `plan`. `spec_for(key, fraction)` builds a candidate's trial at a
    fraction of the final length (at each rung it is also asked for the full length's, so
    that a length it rounds to the full one is recorded as the full length);
    `prefer(tied_keys, verdicts)` picks among candidates still
    tied within noise after a rung shorter than the final length, given their runs' verdicts
    there (at full length the lowest loss wins), and `prefer_untold` (default `prefer`) when
    no rung told any candidates apart;
    `room()` is what is left of the stage's budget, in final trainings (None: the plan, no
    more). Before each rung the rest of the plan must fit in `room()`, else the
    decision is taken on the runs so far; a tie larger than the planned half goes on whole
    when it fits, else a spread of it does (so longer runs still cover the range).
    With `replan` (and two candidates or more), the first rung's run of `pilot` (one of
    `keys`) trains alone first, and `replan(plan)` gives the candidates and the plan to go
    on with, from what that run really cost: where the first rung's length is kept, the run
    is one of the rung's, else it was only a pilot. With `stop`, a rung short of the last
    for which `stop(its comparison)` is true ends the halving there: its leaders are the
    result, for the caller to go on from (`recipe._to_full_length`)."""
    run = executor or LocalExecutor()
    alive = list(keys)
    rungs: list[Rung] = []
    ranked: list[Any] = []
    by_label: dict[str, Any] = {}
    first: dict[Any, TrialResult] = {}  # the first rung's runs already trained (the pilot's)
    if replan is not None and pilot in alive and len(alive) > 1:
        piloted = run.map([spec_for(pilot, float(plan.fractions[0]))])[0]
        kept, again = replan(plan)
        keys = [k for k in keys if k in kept]
        alive = list(keys)
        if again.fractions[0] == plan.fractions[0] and pilot in alive:
            first[pilot] = piloted
        plan = again
    for r, fraction in enumerate(plan.fractions):
        if r > 0 and room is not None:
            rest = len(alive) * (float(fraction) + plan.overhead) + sum(
                k * (float(f) + plan.overhead)
                for k, f in zip(plan.keep[r + 1:], plan.fractions[r + 1:], strict=True))
            if rest > room():
                break
        specs = [spec_for(k, float(fraction)) for k in alive]
        # a length the caller rounds to the full one (as many steps) is the full length: the
        # rung is recorded so, and its ties are settled as the full length's are
        length = 1.0 if all(sp.trains_like(spec_for(k, 1.0))
                            for k, sp in zip(alive, specs, strict=True)) else float(fraction)
        pending = [sp for k, sp in zip(alive, specs, strict=True) if r > 0 or k not in first]
        fresh = iter(run.map(pending) if pending else [])
        comparison = Comparison.of([first[k] if r == 0 and k in first else next(fresh)
                                    for k in alive])
        rungs.append(Rung(length, comparison))
        by_label = {s.label: k for s, k in zip(specs, alive, strict=True)}
        ranked = [x for x in comparison.ranking if x.rank is not None]
        if not ranked:
            raise AllFailedError("every candidate's run failed: " +
                                 "; ".join(x.error or "?" for x in comparison.ranking))
        if r == len(plan.fractions) - 1 or (stop is not None and stop(comparison)):
            break
        leaders = [by_label[x.label] for x in ranked if x.rank == ranked[0].rank]
        want = plan.keep[r + 1]
        if len(leaders) <= want:
            alive = [by_label[x.label] for x in ranked[:want]]
        elif room is not None and len(leaders) * (float(plan.fractions[r + 1]) + plan.overhead) \
                + sum(k * (float(f) + plan.overhead)
                      for k, f in zip(plan.keep[r + 2:], plan.fractions[r + 2:], strict=True)) \
                <= room():
            alive = leaders
        else:  # tied beyond what the budget allows: keep the range covered
            alive = spread([k for k in keys if k in leaders], want)
        alive = [k for k in keys if k in alive]  # back in natural order
    last = rungs[-1].fraction
    leaders = [by_label[x.label] for x in ranked if x.rank == ranked[0].rank]
    tied = len(leaders) > 1 and last < 1
    told_apart = any(_separates(rung.comparison) for rung in rungs)
    chooser = prefer if told_apart or prefer_untold is None else prefer_untold
    verdicts = {by_label[x.label]: x.verdict for x in ranked}
    winner = chooser(leaders, verdicts) if tied else by_label[ranked[0].label]
    if len(keys) == 1:
        note = f"there was room for one run only, of {_fraction_text(last)}"
    elif not tied and not told_apart:  # at the full length, a tie goes to the lowest loss
        note = (f"no length told the candidates apart: at {_fraction_text(last)} too, all "
                "were within noise of each other, and the lowest loss was taken")
    elif not tied:
        shortest = next(i for i, rung in enumerate(rungs) if _separates(rung.comparison))
        note = (f"runs of {_fraction_text(rungs[shortest].fraction)} told the candidates "
                f"apart" + (f"; the better ones grew to {_fraction_text(last)}"
                            if shortest < len(rungs) - 1 else ""))
        if len(leaders) > 1:
            note += " (the best ones within noise of each other: the lowest loss taken)"
    else:
        note = (f"still tied within noise at {_fraction_text(last)}, the longest the budget "
                f"allowed" + ("" if told_apart else ", and no length told any apart"))
    return Halving(winner, rungs, tied, note, told_apart,
                   tuple(k for k in keys if k in leaders))


def _separates(comparison: Comparison) -> bool:
    """Whether a rung's best stood clear of the rest (not everyone tied)."""
    ranks = {x.rank for x in comparison.ranking if x.rank is not None}
    return len(ranks) > 1
