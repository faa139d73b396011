"""`compare.rank`: order by validation loss, ties within the measured noise, divergence and
failures last — on hand-made results, so every rule is seen on its own."""

import pytest

from disciplined.compare import Comparison, rank
from disciplined.diagnose import Diagnosis
from disciplined.trials import Budget, TrialResult, TrialSpec


def result(label, loss, *, noise=0.0, verdict="balanced", metric=None):
    spec = TrialSpec("digits", max_lr=0.1, budget=Budget(steps=10), label=label)
    diagnosis = Diagnosis(verdict, "", {"noise": noise})
    return TrialResult(spec, "complete", None, None, diagnosis, loss, metric, 10, 1.0)


def failed(label):
    spec = TrialSpec("digits", max_lr=0.1, budget=Budget(steps=10), label=label)
    return TrialResult.failed(spec, "failed", "ValueError: boom")


def places(results):
    return [(r.label, r.rank) for r in rank(results)]


def test_the_lowest_validation_loss_ranks_first():
    assert places([result("b", 0.5), result("a", 0.3), result("c", 0.9)]) == \
        [("a", 1), ("b", 2), ("c", 3)]


def test_losses_within_two_combined_noise_levels_share_the_leaders_rank():
    # margin: 2 * hypot(0.03, 0.04) = 0.1
    ranked = rank([result("a", 0.30, noise=0.03), result("b", 0.39, noise=0.04),
                   result("c", 0.45, noise=0.04)])
    assert [(r.label, r.rank) for r in ranked] == [("a", 1), ("b", 1), ("c", 3)]
    assert ranked[0].tied_with == ["b"] and ranked[1].tied_with == ["a"]
    assert ranked[2].tied_with == []


def test_without_noise_nothing_ties():
    assert places([result("a", 0.30), result("b", 0.30000001)]) == [("a", 1), ("b", 2)]


def test_an_exact_tie_is_broken_by_the_higher_metric():
    assert places([result("a", 0.3, metric=0.90), result("b", 0.3, metric=0.95)])[0] == ("b", 1)


def test_diverged_trials_go_last_whatever_their_loss():
    ranked = places([result("wild", 0.1, verdict="diverged"), result("calm", 0.4)])
    assert ranked == [("calm", 1), ("wild", 2)]


def test_failed_trials_are_listed_last_without_a_rank_and_with_their_error():
    ranked = rank([failed("x"), result("a", 0.4)])
    assert [(r.label, r.rank) for r in ranked] == [("a", 1), ("x", None)]
    assert ranked[1].error == "ValueError: boom"


def test_a_comparison_round_trips_through_its_dict():
    comparison = Comparison.of([result("a", 0.3, noise=0.01), failed("x")])
    again = Comparison.from_dict(comparison.to_dict())
    assert again == comparison
    assert again.best.label == "a"
    with pytest.raises(StopIteration):
        again.result("missing")
