"""Successive halving: the rung plan's properties, and the runs' growth on hand-made results
(an executor whose losses are a known function of the candidate and the run's length)."""

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disciplined.diagnose import Diagnosis
from disciplined.halving import (
    RungPlan,
    halving_keep,
    plan_rungs,
    spread,
    successive_halving,
)
from disciplined.trials import Budget, TrialResult, TrialSpec


@given(n=st.integers(1, 12), budget=st.floats(0.01, 20), shortest=st.floats(0.005, 1.5),
       overhead=st.sampled_from([0.0, 0.01, 0.2]))
def test_a_plan_fits_its_budget_and_doubles_up_to_at_most_the_full_length(n, budget, shortest,
                                                                         overhead):
    plan = plan_rungs(n, budget, shortest, overhead=overhead)
    if plan is None:  # only when one shortest run each does not fit
        assert n * (min(shortest, 1.0) + overhead) > budget
        return
    assert plan.cost <= budget + 1e-9
    assert plan.fractions[-1] <= 1 and plan.fractions[0] >= min(shortest, 1.0) - 1e-12
    assert all(b == 2 * a for a, b in zip(plan.fractions, plan.fractions[1:], strict=False))
    assert plan.keep[0] == n and list(plan.keep) == sorted(plan.keep, reverse=True)
    assert min(plan.keep) >= min(n, 2)


def test_a_generous_budget_trains_every_candidate_at_full_length():
    plan = plan_rungs(6, budget=6.0, shortest=0.01)
    assert plan.fractions == (Fraction(1),) and plan.keep == (6,)


def test_a_tight_budget_starts_short_and_halves():
    plan = plan_rungs(8, budget=1.6, shortest=0.01)
    assert plan.keep == halving_keep(8, len(plan.fractions))
    assert len(plan.fractions) > 1 and plan.fractions[-1] < 1


def test_spread_keeps_the_ends_of_the_range():
    assert spread([1, 2, 3, 4, 5, 6, 7], 3) == [1, 4, 7]
    assert spread([1, 2, 3], 5) == [1, 2, 3]


class Fake:
    """Runs nothing: a candidate's loss is `loss(key, fraction)`, noise `noise`."""

    def __init__(self, loss, noise=0.0, verdict=lambda lr: "balanced"):
        self.loss, self.noise, self.verdict, self.calls = loss, noise, verdict, []

    def map(self, specs, on_result=None):
        self.calls.append([(s.max_lr, s.budget.epochs) for s in specs])
        return [TrialResult(s, "complete", None, None,
                            Diagnosis(self.verdict(s.max_lr), "", {"noise": self.noise}),
                            self.loss(s.max_lr, s.budget.epochs), None, 10, 1.0)
                for s in specs]


def spec_for(lr, fraction):
    return TrialSpec("digits", max_lr=lr, budget=Budget(epochs=fraction),
                     label=f"lr {lr} @ {fraction}")


LRS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def lowest(tied, _verdicts):
    return min(tied)


def test_the_better_half_grows_and_the_best_at_the_longest_length_wins():
    # short runs favour high LRs; at full length 1e-3 is best
    def loss(lr, f):
        return abs(math.log10(lr) - (-1 if f < 1 else -3)) + (1 - f)

    fake = Fake(loss)
    plan = plan_rungs(5, budget=4.4, shortest=0.1)
    assert plan.fractions == (Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1))
    found = successive_halving(LRS, spec_for, plan, prefer=lowest, executor=fake)
    assert [len(c) for c in fake.calls] == [5, 3, 2, 2]
    assert {k for k, _ in fake.calls[1]} >= {1e-1}  # the short runs' favourite goes on
    finalists = [k for k, _ in fake.calls[-1]]
    assert found.winner == min(finalists, key=lambda k: loss(k, 1))
    assert not found.tied and "told the candidates apart" in found.length_note


def test_candidates_tied_at_every_short_length_grow_together_when_there_is_room():
    fake = Fake(lambda lr, f: 1.0 if f < 1 else abs(math.log10(lr) + 2), noise=0.1)
    plan = plan_rungs(5, budget=4.75, shortest=0.25)
    assert len(plan.fractions) == 3 and plan.fractions[-1] == 1
    found = successive_halving(LRS, spec_for, plan, prefer=lowest, room=lambda: 100.0,
                               executor=fake)
    assert all(len(c) == 5 for c in fake.calls)  # all tied: none dropped
    assert found.winner == 1e-2 and not found.tied  # the full length decides


def test_candidates_tied_even_at_full_length_are_said_to_be_tied():
    # the lowest loss is taken at full length, but the note must not claim a length told
    # them apart (it read "runs of the full length told the candidates apart" beside a table
    # that ranked every candidate first)
    fake = Fake(lambda lr, f: 1.0 + lr / 100, noise=0.1)
    found = successive_halving(LRS, spec_for, plan_rungs(5, budget=5.0, shortest=1.0),
                               prefer=lowest, executor=fake)
    assert not found.tied and not found.told_apart and found.winner == min(LRS)
    assert found.length_note == ("no length told the candidates apart: at the full length "
                                 "too, all were within noise of each other, and the lowest "
                                 "loss was taken")


def test_a_tie_with_no_room_to_grow_keeps_the_range_covered_and_is_said():
    fake = Fake(lambda lr, f: 1.0, noise=0.1)
    plan = plan_rungs(5, budget=2.0, shortest=0.05)
    found = successive_halving(LRS, spec_for, plan, prefer=lowest, room=lambda: 0.0,
                               executor=fake)
    assert len(fake.calls) == 1  # no room for the next rung: decided on the first
    assert found.tied and found.winner == min(LRS)
    assert "still tied" in found.length_note


def test_a_tie_no_length_broke_is_settled_by_its_own_rule_and_said():
    fake = Fake(lambda lr, f: 1.0, noise=0.1)
    plan = plan_rungs(5, budget=2.0, shortest=0.05)
    found = successive_halving(LRS, spec_for, plan, prefer=lowest, room=lambda: 0.0,
                               prefer_untold=lambda tied, _: tied[len(tied) // 2], executor=fake)
    assert found.tied and not found.told_apart and found.winner == 1e-2
    assert "no length told any apart" in found.length_note


def test_a_tie_among_leaders_after_a_length_told_others_apart_uses_prefer():
    # 1e-4 and 1.0 are clearly worse at every length; the middle three stay tied
    fake = Fake(lambda lr, f: 1.0 if 1e-3 <= lr <= 1e-1 else 5.0, noise=0.1)
    plan = plan_rungs(5, budget=1.2, shortest=0.05)
    assert len(plan.fractions) > 1 and plan.fractions[-1] < 1
    found = successive_halving(LRS, spec_for, plan, prefer=lowest, room=lambda: 100.0,
                               prefer_untold=lambda tied, _: max(tied), executor=fake)
    assert found.tied and found.told_apart and found.winner == 1e-3
    assert found.leaders == (1e-3, 1e-2, 1e-1)


def test_a_tie_is_settled_knowing_each_tied_runs_verdict():
    fake = Fake(lambda lr, f: 1.0 if 1e-3 <= lr <= 1e-1 else 5.0, noise=0.1,
                verdict=lambda lr: "underfitting" if lr < 1e-2 else "balanced")
    seen = {}

    def prefer(tied, verdicts):
        seen.update(verdicts)
        return min(k for k in tied if verdicts[k] != "underfitting")

    found = successive_halving(LRS, spec_for, plan_rungs(5, budget=1.2, shortest=0.05),
                               prefer=prefer, room=lambda: 100.0, executor=fake)
    assert found.winner == 1e-2
    assert seen == {1e-3: "underfitting", 1e-2: "balanced", 1e-1: "balanced"}  # the last rung


def test_a_tie_too_large_for_the_room_keeps_a_spread():
    fake = Fake(lambda lr, f: 1.0, noise=0.1)
    plan = plan_rungs(5, budget=1.0, shortest=0.1)
    successive_halving(LRS, spec_for, plan, prefer=lowest, executor=fake)
    if len(plan.fractions) > 1:
        second = [k for k, _ in fake.calls[1]]
        assert min(second) == min(LRS) and max(second) == max(LRS)


def test_every_run_failing_is_an_error_that_says_so():
    class Failing:
        def map(self, specs, on_result=None):
            return [TrialResult.failed(s, "failed", "ValueError: boom") for s in specs]

    with pytest.raises(ValueError, match="boom"):
        successive_halving(LRS, spec_for, plan_rungs(5, 5.0, 0.1), prefer=lowest,
                           executor=Failing())


@pytest.mark.parametrize("kept", [True, False])
def test_the_pilot_run_trains_alone_first_and_counts_only_where_its_length_stands(kept):
    # the first rung's run of the pilot goes first; where the re-plan keeps the first
    # rung's length it is one of that rung's runs (not trained again), else it is left out
    fake = Fake(lambda lr, f: abs(math.log10(lr) + 2) + (1 - f))
    plan = plan_rungs(5, budget=1.0, shortest=0.05)
    shorter = plan_rungs(5, budget=0.5, shortest=0.05)
    assert shorter.fractions[0] < plan.fractions[0]
    asked = []

    def replan(current):
        asked.append((current, len(fake.calls)))  # after the pilot alone, before the rest
        return LRS, current if kept else shorter

    found = successive_halving(LRS, spec_for, plan, prefer=lowest, executor=fake,
                               pilot=1e-2, replan=replan)
    assert asked == [(plan, 1)]  # asked once, after the pilot alone
    assert fake.calls[0] == [(1e-2, float(plan.fractions[0]))]
    first = [k for k, _ in fake.calls[1]]
    assert first == ([k for k in LRS if k != 1e-2] if kept else LRS)
    used = plan if kept else shorter
    assert fake.calls[1][0][1] == float(used.fractions[0])
    assert [r.fraction for r in found.rungs] == [float(f) for f in used.fractions]
    assert [x.label for x in found.rungs[0].comparison.results] == \
        [spec_for(k, float(used.fractions[0])).label for k in LRS]  # in the keys' order
    assert found.winner == 1e-2


def test_no_pilot_without_a_replan_or_with_one_candidate():
    def never(plan):
        raise AssertionError("no pilot, so no re-plan")

    for keys, replan in ((LRS, None), ([1e-2], never)):
        fake = Fake(lambda lr, f: 1.0)
        successive_halving(keys, spec_for, plan_rungs(len(keys), 1.0, 0.05), prefer=lowest,
                           executor=fake, pilot=1e-2, replan=replan)
        assert len(fake.calls[0]) == len(keys)


def test_a_replan_may_keep_fewer_candidates_or_the_pilot_alone():
    fake = Fake(lambda lr, f: abs(math.log10(lr) + 2))
    plan = plan_rungs(5, budget=1.0, shortest=0.05)
    found = successive_halving(LRS, spec_for, plan, prefer=lowest, executor=fake, pilot=1e-2,
                               replan=lambda p: ([1e-3, 1e-2, 1e-1], p))
    assert [k for k, _ in fake.calls[1]] == [1e-3, 1e-1]  # the pilot's run counts
    assert {r.spec.max_lr for r in found.rungs[0].comparison.results} == {1e-3, 1e-2, 1e-1}
    fake = Fake(lambda lr, f: 1.0)
    found = successive_halving(LRS, spec_for, plan, prefer=lowest, executor=fake, pilot=1e-2,
                               replan=lambda p: ([1e-2], RungPlan(p.fractions[:1], (1,))))
    assert len(fake.calls) == 1 and found.winner == 1e-2
    assert "room for one run only" in found.length_note


def test_a_length_the_caller_rounds_to_the_full_one_is_recorded_as_the_full_length():
    # 99.95% of the final length is as many steps as the final: the caller trains it as the
    # full length, so its tie is the full length's (lowest loss), not a short run's
    def rounding(lr, fraction):
        return spec_for(lr, 1.0 if fraction >= 0.999 else fraction)

    fake = Fake(lambda lr, f: 1.0 + lr / 100, noise=0.1)
    plan = RungPlan((Fraction(1999, 2000),), (5,), 0.0)
    found = successive_halving(LRS, rounding, plan, prefer=lambda tied, _: max(tied),
                               executor=fake)
    assert found.last.fraction == 1.0 and not found.tied and found.winner == min(LRS)
    assert "at the full length too" in found.length_note
    # a length the caller does not round stays short, and its tie is the caller's to settle
    short = successive_halving(LRS, spec_for, plan, prefer=lambda tied, _: max(tied),
                               executor=Fake(lambda lr, f: 1.0 + lr / 100, noise=0.1))
    assert short.last.fraction == 0.9995 and short.tied and short.winner == max(LRS)
