"""Reading a validation-loss curve the way Smith 2018 (Section 3) reads it.

Underfitting: still clearly decreasing at the end. Balanced: a horizontal plateau (the goal).
Overfitting: rising after its minimum by more than the noise. Unstable: spikes or jitter large
against the curve's level. Diverged: not finite, or blown up. The noise is measured on the
curve itself (from second differences, robust to spikes), so a flat noisy curve is balanced.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

VERDICTS = ("underfitting", "balanced", "overfitting", "unstable", "diverged", "inconclusive")
# Fewer evaluations than this cannot separate a trend from noise.
MIN_POINTS = 4
# A change must exceed this many standard errors of the noise to count...
SIGNIFICANCE = 2.0
# ... and this fraction of the curve's level, so a noiseless curve's tiny drift is no trend.
MIN_REL_CHANGE = 0.01
# Jitter above this fraction of the loss level, or this many spikes, is instability.
UNSTABLE_REL_NOISE = 0.1
SPIKE_SIGMAS = 5.0
MAX_SPIKES = 1
# Blown up: the end is this many times the start, or this many times the minimum.
BLOWUP_VS_START, BLOWUP_VS_MIN = 2.0, 10.0

_ADVICE_TRAINING = {
    "underfitting": "still decreasing at the end: underfitting — a larger learning rate, less "
                    "weight decay or more epochs moves it toward balance",
    "balanced": "horizontal plateau: balanced — the paper's target; keep these values",
    "overfitting": "rising after its minimum by more than the noise: overfitting — more "
                   "regularization (weight decay, a larger learning rate, a smaller batch), "
                   "or stop at the minimum",
    "unstable": "spikes or jitter large against the loss: unstable — lower the maximum "
                "learning rate or the momentum",
    "diverged": "the loss blew up: diverged — lower the maximum learning rate (or momentum)",
    "inconclusive": "too few evaluations to read the curve — evaluate more often",
}
_ADVICE_RANGE = {
    "underfitting": "the loss still falls at the last LR: extend end_lr to see where it turns",
    "balanced": "the loss flattens without rising: extend end_lr to find the upper limit",
    "overfitting": "minimum, then a rise: the usual shape — take max_lr before the minimum",
    "unstable": "the loss becomes ragged: take max_lr before the raggedness starts",
    "diverged": "the loss blew up at the top of the range: max_lr lies well below that point",
    "inconclusive": "too few points to read — run more steps",
}


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """A verdict, the numbers behind it, and what to do about it."""

    verdict: str
    advice: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def noise_level(y: np.ndarray) -> float:
    """Standard deviation of the noise around a smooth trend: for white noise of std s,
    second differences have std s*sqrt(6); the median absolute deviation ignores spikes."""
    if len(y) < 3:
        return 0.0
    d2 = y[2:] - 2 * y[1:-1] + y[:-2]
    mad = float(np.median(np.abs(d2 - np.median(d2))))
    return 1.4826 * mad / math.sqrt(6)


def _tail_change(x: np.ndarray, y: np.ndarray, noise: float) -> tuple[float, float]:
    """Least-squares change over the last third (>= 3 points), and its standard error."""
    k = max(3, len(y) // 3)
    xt, yt = x[-k:], y[-k:]
    slope = float(np.polyfit(xt, yt, 1)[0]) if np.ptp(xt) > 0 else 0.0
    change = slope * float(xt[-1] - xt[0])
    stderr = noise * math.sqrt(12 * (k - 1) / (k * (k + 1)))
    return change, stderr


def diagnose_curve(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *,
                   kind: str = "training",
                   train_loss: float | None = None) -> Diagnosis:
    """Classify a loss curve `y` against `x` (steps, or log LR for a range test)."""
    advice = _ADVICE_RANGE if kind == "range_test" else _ADVICE_TRAINING
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    evidence: dict[str, Any] = {"points": len(ys)}

    def verdict(name: str) -> Diagnosis:
        return Diagnosis(name, advice[name], evidence)

    if len(ys) == 0:
        return verdict("inconclusive")
    if not np.all(np.isfinite(ys)):
        evidence["first_non_finite"] = int(np.argmin(np.isfinite(ys)))
        return verdict("diverged")
    i_min = int(np.argmin(ys))
    level = float(np.median(np.abs(ys))) or 1.0
    evidence.update(start=float(ys[0]), end=float(ys[-1]), minimum=float(ys[i_min]),
                    min_at=float(xs[i_min]), min_index=i_min)
    if train_loss is not None:
        evidence["generalization_gap"] = float(ys[-1] - train_loss)
    if ys[-1] > BLOWUP_VS_START * ys[0] or ys[-1] > BLOWUP_VS_MIN * max(ys[i_min], 1e-12):
        return verdict("diverged")
    if len(ys) < MIN_POINTS:
        return verdict("inconclusive")
    noise = noise_level(ys)
    evidence["noise"] = noise
    neighbours = np.maximum(ys[:-2], ys[2:])
    spikes = int(np.sum(ys[1:-1] - neighbours > max(SPIKE_SIGMAS * noise,
                                                    MIN_REL_CHANGE * level)))
    evidence["spikes"] = spikes
    if spikes > MAX_SPIKES or noise > UNSTABLE_REL_NOISE * level:
        return verdict("unstable")
    change, stderr = _tail_change(xs, ys, noise)
    evidence.update(tail_change=change, tail_stderr=stderr)
    threshold = max(SIGNIFICANCE * stderr, MIN_REL_CHANGE * level)
    rise = float(np.mean(ys[-2:]) - ys[i_min])
    evidence["rise_after_min"] = rise
    if i_min < len(ys) - 2 and rise > max(SIGNIFICANCE * noise * math.sqrt(1.5),
                                          MIN_REL_CHANGE * level) and change > 0:
        return verdict("overfitting")
    if change < -threshold:
        return verdict("underfitting")
    return verdict("balanced")


def diagnose(run: Any) -> Diagnosis:
    """Diagnose a training `History` (its validation loss), or a range test's curve
    (`RangeTestResult` or `RangeCurve`: validation loss if measured, else smoothed training
    loss, against log LR)."""
    from .engine import History
    from .range_test import RangeCurve, RangeTestResult

    if isinstance(run, RangeTestResult):
        run = run.runs[0]
    if isinstance(run, RangeCurve):
        lrs, losses = (run.val_lr, run.val_loss) if run.val_lr else (run.lr, run.smoothed)
        return diagnose_curve(np.log10(lrs), losses, kind="range_test")
    if isinstance(run, History):
        train_end = None
        if run.train_loss and run.eval_step:
            tail = run.train_loss[-max(1, len(run.train_loss) // 10):]
            train_end = float(np.mean(tail))
        return diagnose_curve(run.eval_step, run.val_loss, train_loss=train_end)
    raise TypeError(f"diagnose takes a History, RangeTestResult or RangeCurve, got "
                    f"{type(run).__name__}; for raw arrays use diagnose_curve(x, y)")
