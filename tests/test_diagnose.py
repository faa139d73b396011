"""diagnose(): synthetic curves whose answer we control, and real runs on digits."""

import numpy as np
import pytest

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
