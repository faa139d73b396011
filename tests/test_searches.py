"""Comparison runs and the checklist's searches, on real short trainings (digits)."""

import pickle

import pytest
import torch

from disciplined.compare import compare, rank
from disciplined.plot import plot_search
from disciplined.searches import (
    batch_size_search,
    initial_loss,
    momentum_search,
    next_weight_decay,
    round_sig,
    schedule_search,
    weight_decay_grid,
    weight_decay_search,
)
from disciplined.trials import Budget, TrialSpec, run_trial

BUDGET = Budget(epochs=3)


def test_an_absurd_weight_decay_is_underfitting_and_ranked_last():
    c = compare([{"weight_decay": w, "label": f"wd {w:g}"} for w in (1.0, 5e-4, 1e-4)],
                "digits", BUDGET, max_lr=0.3)
    assert c.ranking[-1].label == "wd 1"
    assert c.ranking[-1].verdict == "underfitting"
    assert c.ranking[0].rank == 1 and c.best.val_metric > 0.9


def test_momentum_0999_at_a_high_lr_diverges_and_is_flagged():
    c = compare([{"momentum": (0.999, 0.999), "cycle_momentum": False, "label": "m 0.999"},
                 {"momentum": (0.9, 0.9), "cycle_momentum": False, "label": "m 0.9"}],
                "digits", BUDGET, max_lr=2.0, policy="constant")
    bad = next(r for r in c.ranking if r.label == "m 0.999")
    assert bad.verdict == "diverged"
    assert c.ranking[-1].label == "m 0.999"


def test_same_candidates_tie_within_noise_instead_of_winning():
    same = [{"label": "a"}, {"label": "b"}]
    c = compare(same, "digits", Budget(epochs=2), max_lr=0.1)
    assert [r.rank for r in c.ranking] == [1, 1]
    assert c.ranking[0].tied_with == [c.ranking[1].label]


def test_momentum_search_tries_the_papers_values_and_decides(tmp_path):
    result = momentum_search("digits", max_lr=0.3, budget=BUDGET)
    labels = {r.label for r in result.comparisons[0].results}
    assert labels == {"momentum 0.99", "momentum 0.97", "momentum 0.95", "momentum 0.9"}
    assert result.decision.momentum is not None and result.decision.momentum[1] == 0.85
    assert result.decision.momentum[0] in (0.99, 0.97, 0.95, 0.9)
    assert result.decision.to_dict().keys() == {"momentum"}
    assert "lowest early validation loss" in result.reason
    assert plot_search(result, tmp_path / "m.png").stat().st_size > 0
    constant = momentum_search("digits", max_lr=0.05, budget=Budget(epochs=1),
                               policy="constant", values=(0.9, 0.95))
    assert all(r.spec.momentum[0] == r.spec.momentum[1] and not r.spec.cycle_momentum
               for r in constant.comparisons[0].results)


@pytest.mark.parametrize(
    ("ranked", "grid", "spacing", "expected"),
    [
        ([1e-4, 1e-3, 1e-5, 0.0], [1e-3, 1e-4, 1e-5, 0.0], 1.0, 3e-4),  # bisect toward 1e-3
        ([1e-4, 1e-5, 1e-3, 0.0], [1e-3, 1e-4, 1e-5, 0.0], 1.0, 3e-5),  # bisect toward 1e-5
        ([1e-3, 1e-4, 1e-5, 0.0], [1e-3, 1e-4, 1e-5, 0.0], 1.0, 1e-2),  # top edge: extrapolate
        ([0.0, 1e-5, 1e-4, 1e-3], [1e-3, 1e-4, 1e-5, 0.0], 1.0, 1e-6),  # zero best: go lower
        ([1e-5, 0.0, 1e-4, 1e-3], [1e-3, 1e-4, 1e-5, 0.0], 1.0, 1e-6),  # bottom edge
        ([5e-4, 2e-4, 2e-3], [2e-4, 5e-4, 2e-3], 0.5, 3e-4),  # around a guess
    ],
)
def test_the_follow_up_bisects_the_exponent_or_extrapolates(ranked, grid, spacing, expected):
    assert next_weight_decay(ranked, grid, spacing) == pytest.approx(expected)


def test_grids_follow_the_prior_and_the_loss_scale():
    assert weight_decay_grid() == [1e-3, 1e-4, 1e-5, 0.0]
    assert weight_decay_grid(5e-4) == [2e-4, 5e-4, 2e-3]
    assert weight_decay_grid(loss_scale=1e-5) == [1e-8, 1e-9, 1e-10, 0.0]
    assert round_sig(0.000316) == 3e-4 and round_sig(0.0) == 0.0


def test_a_loss_far_from_order_one_scales_the_grid_and_says_so(tmp_path):
    task = tmp_path / "tiny_loss.py"
    task.write_text(
        "import torch\n"
        "from disciplined.tasks import digits_cnn, digits_datasets\n"
        "class Scaled(torch.nn.CrossEntropyLoss):\n"
        "    def forward(self, x, y):\n"
        "        return 1e-5 * super().forward(x, y)\n"
        "build_model = digits_cnn\n"
        "build_datasets = digits_datasets\n"
        "loss_fn = Scaled()\n"
        "metric = 'accuracy'\n"
        "batch_size = 64\n")
    assert initial_loss(str(task)) == pytest.approx(2.3e-5, rel=0.05)
    result = weight_decay_search(str(task), max_lr=0.3, budget=Budget(epochs=1))
    assert any("far from order 1: the grid is scaled" in note for note in result.notes)
    assert max(result.evidence["grid"]) == pytest.approx(2e-8)


def test_grid_mode_runs_the_grid_then_one_follow_up():
    result = weight_decay_search("digits", max_lr=0.3, budget=BUDGET)
    tried = sorted(r.spec.weight_decay for r in result.comparisons[0].results)
    assert tried[:4] == [0.0, 1e-5, 1e-4, 1e-3] or len(tried) == 5
    assert result.evidence["follow_up"] in tried
    assert result.decision.weight_decay in tried


def test_snapshot_fork_runs_fewer_steps_than_independent_runs_and_says_so():
    result = weight_decay_search("digits", max_lr=0.3, budget=Budget(epochs=4), mode="fork")
    ev = result.evidence
    assert ev["steps_forked"] < ev["steps_independent"]
    assert ev["steps_saved"] == ev["steps_independent"] - ev["steps_forked"] > 0
    assert ev["prefix_steps"] > 0
    assert "saved" in result.reason
    assert {r.spec.weight_decay for r in result.comparisons[0].results} == \
        {1e-3, 1e-4, 1e-5, 0.0}


def test_combined_mode_chooses_lr_and_weight_decay_together(tmp_path):
    result = weight_decay_search("digits", budget=BUDGET, mode="combined")  # no max_lr needed
    assert result.decision.to_dict().keys() == {"weight_decay", "max_lr"}
    assert len(result.range_tests) == 4
    assert plot_search(result, tmp_path / "c.png").stat().st_size > 0


def test_an_oversized_batch_is_skipped_with_a_note_not_a_crash():
    result = batch_size_search("digits", sizes=[64, 100_000], seconds=1.5)
    assert [n for n in result.notes if n.startswith("batch 100000")] == [
        "batch 100000: skipped, it exceeds the 1438 training samples"]
    assert result.decision.batch_size == 64
    measured = result.evidence["measured"]["batch 64"]
    assert measured["samples_per_second"] > 0 and measured["max_lr"] > 0


def test_schedule_search_compares_every_policy_with_both_momenta():
    result = schedule_search("digits", max_lr=0.2, budget=Budget(epochs=2))
    assert len(result.comparisons[0].results) == 12
    assert all(r.state == "complete" for r in result.comparisons[0].results)


def test_specs_and_results_round_trip_through_pickle():
    spec = TrialSpec("digits", max_lr=0.1, budget=Budget(steps=20), label="x")
    assert pickle.loads(pickle.dumps(spec)) == spec
    result = run_trial(spec)
    again = pickle.loads(pickle.dumps(result))
    assert again.spec == spec and again.val_loss == result.val_loss
    assert again.history == result.history


def test_a_failing_trial_is_recorded_not_raised():
    result = run_trial(TrialSpec("no-such-task", max_lr=0.1, budget=Budget(steps=5),
                                 label="broken"))
    assert result.state == "failed" and "unknown task" in result.error
    ranking = rank([result])
    assert ranking[0].rank is None and ranking[0].error


def test_same_spec_same_initial_weights_and_data_order():
    spec = TrialSpec("digits", max_lr=0.1, budget=Budget(steps=15), label="x")
    a, b = run_trial(spec), run_trial(spec)
    assert a.history.train_loss == b.history.train_loss
    assert torch.isfinite(torch.tensor(a.history.train_loss)).all()
