"""diagnose(): synthetic curves whose answer we control, and real runs on digits."""

import numpy as np
import pytest
import torch

from disciplined.diagnose import diagnose, diagnose_curve, noise_level
from disciplined.engine import History

STEPS = np.arange(1, 41) * 10
RNG = np.random.default_rng(0)


def noisy(curve, sigma):
    return curve + RNG.normal(0, sigma, len(curve))


def test_a_curve_still_falling_at_the_end_is_underfitting():
    d = diagnose_curve(STEPS, noisy(2.0 * np.exp(-STEPS / 300) + 0.2, 0.005))
    assert d.verdict == "underfitting"
    assert "larger learning rate" in d.advice
    assert d.evidence["tail_change"] < 0


def test_a_flat_curve_that_barely_fell_is_underfitting_and_says_why():
    # no constant prediction's loss to read it against: it fell 3% from its first point
    d = diagnose_curve(STEPS, noisy(np.concatenate([[2.36, 2.33], np.full(38, 2.3)]), 0.002))
    assert d.verdict == "underfitting" and d.evidence["learned"] < 0.1
    assert "barely below its first evaluation" in d.advice
    assert "still decreasing" not in d.advice


def test_a_flat_noisy_curve_is_balanced_not_overfitting():
    curve = np.concatenate([np.linspace(2.0, 0.5, 10), np.full(30, 0.5)])
    for seed in range(5):
        y = curve + np.random.default_rng(seed).normal(0, 0.03, len(curve))
        assert diagnose_curve(STEPS, y).verdict == "balanced", seed


def test_a_controlled_rise_after_the_minimum_is_overfitting():
    x = STEPS / STEPS[-1]
    curve = 0.3 + 1.5 * np.exp(-x * 12) + 0.6 * np.maximum(x - 0.4, 0) ** 1.5
    d = diagnose_curve(STEPS, noisy(curve, 0.005))
    assert d.verdict == "overfitting"
    assert d.evidence["rise_after_min"] > 10 * d.evidence["noise"]
    assert d.evidence["min_index"] < 35


def test_non_finite_or_blown_up_curves_are_diverged():
    assert diagnose_curve(STEPS[:5], [2.3, 1.5, np.nan, np.nan, np.nan]).verdict == "diverged"
    blown = np.concatenate([np.linspace(2.3, 0.4, 30), np.geomspace(0.5, 40, 10)])
    assert diagnose_curve(STEPS, blown).verdict == "diverged"


# Two runs of a 256x256 MLP on breast cancer (455 samples, AdamW), evaluated every 50 steps.
COLLAPSED = [0.643, 0.133, 0.069, 0.281, 0.366, 0.641, 0.666, 0.64, 0.642, 0.643, 0.641, 0.641]
MEMORIZED = [0.095, 0.08, 0.052, 0.157, 0.141, 0.143, 0.171, 0.143, 0.148, 0.148, 0.149, 0.149]


def test_a_curve_that_gave_back_what_it_learned_is_unstable_not_balanced():
    # max LR a decade too high: down to 0.069, then back at the majority class's loss, the
    # training loss with it (it was read "balanced": keep these values)
    d = diagnose_curve(STEPS[:12], COLLAPSED, train_loss=0.66, train_start=0.4)
    assert d.verdict == "unstable" and d.evidence["gave_back"] > 0.9
    assert "lower the maximum learning rate" in d.advice
    # the same rise with the training loss far below it is the model fitting its own data
    assert diagnose_curve(STEPS[:12], COLLAPSED, train_loss=0.01).verdict != "unstable"
    # as is a rise whose training loss (dropout on) sits well below the end: overfitting
    rising = np.concatenate([[2.0, 1.0, 0.6, 0.5], np.linspace(0.55, 1.5, 36)])
    assert diagnose_curve(STEPS, rising, train_loss=0.6).verdict == "overfitting"
    # a plateau's jitter gives nothing back: the rise must stand out of the noise
    plateau = 0.45 + 0.15 * np.exp(-np.arange(40) / 3) + 0.045 * np.sin(np.arange(40) * 2.1)
    assert diagnose_curve(STEPS, plateau, train_loss=0.47).verdict == "balanced"


def test_a_first_evaluation_after_the_fall_is_not_the_start_a_blow_up_is_read_against():
    # evaluated first after 50 steps, already near its minimum: ending at 1.6x that first
    # reading is the rise of a model that memorized its data, not a loss that blew up
    # (the training loss started at 0.4 and ended near 0)
    d = diagnose_curve(STEPS[:12], MEMORIZED, train_loss=0.0004, train_start=0.4)
    assert d.verdict == "overfitting"
    # with nothing to say where training started, the first evaluation is the start
    assert diagnose_curve(STEPS[:12], MEMORIZED).verdict == "diverged"
    # a loss that blew up past the training loss's start is still diverged, and so is one
    # whose training loss rose with it (the model no longer fits its own data)
    assert diagnose_curve(STEPS[:12], [*MEMORIZED[:-1], 0.9], train_loss=0.5,
                          train_start=0.4).verdict == "diverged"
    collapsed = [0.10, 0.12, 0.2, 0.3, 0.32, 0.325, 0.325, 0.325, 0.325]
    assert diagnose_curve(STEPS[:9], collapsed, train_loss=0.325,
                          train_start=0.4).verdict == "diverged"


def test_spikes_late_in_the_curve_are_unstable():
    curve = np.concatenate([np.linspace(2.0, 0.5, 10), np.full(30, 0.5)])
    y = noisy(curve, 0.005)
    y[[25, 31, 36]] += 1.0
    d = diagnose_curve(STEPS, y)
    assert d.verdict == "unstable" and d.evidence["spikes"] >= 2


def test_too_few_points_are_inconclusive():
    assert diagnose_curve([1, 2, 3], [2.0, 1.5, 1.2]).verdict == "inconclusive"


def test_noise_level_ignores_the_trend_and_spikes():
    x = np.linspace(0, 1, 200)
    y = 3 * x**2 + np.random.default_rng(1).normal(0, 0.1, 200)
    y[50] += 20
    assert noise_level(y) == pytest.approx(0.1, rel=0.2)


def test_a_history_gives_the_generalization_gap():
    h = History(step=list(range(100)), lr=[0.1] * 100, momentum=[0.9] * 100,
                train_loss=list(np.linspace(2.0, 0.1, 100)),
                eval_step=list(range(10, 101, 10)), val_loss=list(np.linspace(2.0, 0.3, 10)),
                val_metric=[None] * 10, eval_seconds=[0.0] * 10)
    d = diagnose(h)
    assert d.evidence["generalization_gap"] == pytest.approx(0.3 - np.mean(
        np.linspace(2.0, 0.1, 100)[-10:]))
    assert d.verdict == "underfitting"


def test_range_test_curves_are_read_against_the_lr():
    from disciplined.range_test import RangeCurve

    lrs = list(np.logspace(-5, 1, 60))
    x = np.log10(lrs)
    loss = list(0.3 + 2 / (1 + np.exp(4 * (x + 2))) + np.maximum(x + 0.5, 0) ** 2)
    curve = RangeCurve(lrs, [None] * 60, loss, loss, [], [], [], [], "end_lr reached", 0)
    d = diagnose(curve)
    assert d.verdict == "overfitting" and "before the minimum" in d.advice
    with pytest.raises(TypeError, match="diagnose_curve"):
        diagnose([1, 2, 3])


# A classifier's curve from a large initial loss down to exactly what predicting the class
# frequencies scores (ln 10 for ten balanced classes), and flat there: it looks balanced.
AT_THE_PRIORS = np.concatenate([np.linspace(3.5, 2.31, 8), np.full(32, 2.31)])


def test_a_curve_no_better_than_a_constant_prediction_learned_nothing():
    y = noisy(AT_THE_PRIORS, 0.003)
    assert diagnose_curve(STEPS, y).verdict == "balanced"  # without the constant's loss
    d = diagnose_curve(STEPS, y, baseline=np.log(10), train_loss=2.3, train_start=3.4)
    assert d.verdict == "underfitting" and d.evidence["baseline"] == np.log(10)
    assert "constant prediction" in d.advice and "a decade either way" in d.advice
    # its training loss far below the constant: what it learned does not carry over
    d = diagnose_curve(STEPS, y, baseline=np.log(10), train_loss=0.2, train_start=3.4)
    assert d.verdict == "overfitting" and "does not carry over" in d.advice
    # a curve clearly below the constant is read as before
    below = noisy(AT_THE_PRIORS - np.linspace(0, 1.5, 40), 0.003)
    assert diagnose_curve(STEPS, below, baseline=np.log(10)).verdict == \
        diagnose_curve(STEPS, below).verdict != "balanced"


def test_a_curve_back_at_the_constant_by_its_end_lost_what_it_learned():
    # below ln 10 early, then back at it and flat (falling a hair): it read "balanced" when
    # only its lowest point was compared with the constant
    back = np.concatenate([[1.9, 1.9, 2.0, 2.2], np.linspace(2.31, 2.30, 36)])
    y = back + np.random.default_rng(0).normal(0, 0.002, 40)
    d = diagnose_curve(STEPS, y, baseline=np.log(10), train_loss=2.3, train_start=2.3)
    assert d.verdict == "unstable" and d.evidence["back_at_constant"]
    assert "lost what it had learned" in d.advice
    d = diagnose_curve(STEPS, y, baseline=np.log(10), train_loss=0.2, train_start=2.3)
    assert d.verdict == "overfitting" and "back at it by the end" in d.advice


def test_real_runs_on_digits_are_read_against_the_constant_prediction():
    from disciplined.engine import Trainer, build_optimizer
    from disciplined.tasks import digits_cnn, digits_datasets

    train, val = digits_datasets()
    readings = {}
    for max_lr in (0.1, 3.0):  # 3: so high that the net is held at the class frequencies
        torch.manual_seed(0)
        model = digits_cnn()
        opt = build_optimizer("sgd", model, lr=max_lr, weight_decay=5e-4)
        h = Trainer(model, opt, torch.nn.CrossEntropyLoss(), train, val, batch_size=64,
                    eval_every=10).run(steps=200)
        assert h.baseline == pytest.approx(np.log(10), abs=0.01)  # ten balanced classes
        readings[max_lr] = diagnose(h)
    assert "constant" not in readings[0.1].advice
    assert readings[3.0].verdict == "underfitting" and "constant" in readings[3.0].advice
