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
from typing import Any, Literal

import numpy as np

from .curves import noise_level
from .engine import History
from .range_test import RangeCurve, RangeTestResult

Verdict = Literal["underfitting", "balanced", "overfitting", "unstable", "diverged",
                  "inconclusive"]
# Verdicts that ask for a lower LR (Smith 2018, Section 4.1).
UNSTEADY: tuple[Verdict, ...] = ("unstable", "diverged")
# Verdicts that say a curve's end is not its best: it rose after its minimum, or jumped.
PAST_ITS_BEST: tuple[Verdict, ...] = ("overfitting", *UNSTEADY)
# Fewer evaluations than this cannot separate a trend from noise.
MIN_POINTS = 4
# A change must exceed this many standard errors of the noise to count (3: a flat noisy
# curve is misread about once in a few hundred, measured on simulated curves)...
TREND_SIGMAS = 3.0
RISE_SIGMAS = 4.0  # the rise after the minimum: its minimum is biased low by the noise
# ... and this fraction of the curve's level, so a noiseless curve's tiny drift is no trend.
MIN_REL_CHANGE = 0.01
# Jitter above this fraction of the late loss level, or more spikes than this, is instability
# (a small validation set alone jitters by ~10% of a low loss: that is noise, not instability).
UNSTABLE_REL_NOISE = 0.25
SPIKE_SIGMAS = 5.0
MAX_SPIKES = 1  # in the late half of the curve
# The settled part of a curve starts where it is within this fraction of its total fall.
SETTLED = 0.25
# A curve whose minimum is not this fraction below its start has barely learned: a plateau
# that high is underfitting, not balance (where the constant prediction's loss is unknown:
# where it is known, a curve learned if it got clearly below it).
MIN_LEARNED = 0.1
# Blown up: the end is this many times the start (the first evaluation's loss; or, where the
# training loss ended below that, the early training loss if higher: a first evaluation made
# after the loss had fallen is no start for a model that still fits its data), or this many
# times the minimum.
BLOWUP_VS_START, BLOWUP_VS_MIN = 1.5, 10.0
# A curve whose rise after its minimum (beyond the noise) gave back more than this fraction
# of its fall, with the training loss risen with it (the end's gap to it under this
# fraction of the rise: the model lost what it had learned, on its own training data too,
# which overfitting does not), collapsed: unstable (on scikit-learn's breast cancer, AdamW
# at a max LR a decade too high fell to 0.069, then sat at 0.64, the majority class's loss).
GAVE_BACK = 0.5
# ... or the training loss ended this many times above where it started.
TRAIN_BLOWUP = 1.1

_ADVICE_TRAINING: dict[Verdict, str] = {
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
_ADVICE_RANGE: dict[Verdict, str] = {
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

    verdict: Verdict
    advice: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        return cls(data["verdict"], data["advice"], dict(data["evidence"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def learned_fraction(y: Sequence[float] | np.ndarray) -> float:
    """How far a loss curve fell below its first point, as a fraction of that point (1: a
    curve that starts at 0 has nothing left to learn). Below MIN_LEARNED it barely learned."""
    start = float(y[0])
    return (start - float(np.min(y))) / abs(start) if start else 1.0


def _smooth(y: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (shorter at the ends)."""
    half = width // 2
    return np.array([y[max(0, i - half):i + half + 1].mean() for i in range(len(y))])


def _tail_change(x: np.ndarray, y: np.ndarray, noise: float) -> tuple[float, float]:
    """Least-squares change over the last third (>= 3 points), and its standard error."""
    k = max(3, len(y) // 3)
    xt, yt = x[-k:], y[-k:]
    slope = float(np.polyfit(xt, yt, 1)[0]) if np.ptp(xt) > 0 else 0.0
    change = slope * float(xt[-1] - xt[0])
    stderr = noise * math.sqrt(12 * (k - 1) / (k * (k + 1)))
    return change, stderr


def diagnose_curve(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *,
                   kind: str = "training", train_loss: float | None = None,
                   train_start: float | None = None,
                   baseline: float | None = None) -> Diagnosis:
    """Classify a loss curve `y` against `x` (steps, or log LR for a range test).

    `train_loss` (the training loss at the end) gives the generalization gap; with
    `train_start` too, a training loss that ended above where it started is divergence.
    `baseline`, the loss of the best constant prediction (`History.baseline`), is the mark
    a curve must clearly get below to have learned anything from its inputs.
    """
    advice = _ADVICE_RANGE if kind == "range_test" else _ADVICE_TRAINING
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    evidence: dict[str, Any] = {"points": len(ys)}

    def verdict(name: Verdict) -> Diagnosis:
        return Diagnosis(name, advice[name], evidence)

    if len(ys) == 0:
        return verdict("inconclusive")
    if not np.all(np.isfinite(ys)):
        evidence["first_non_finite"] = int(np.argmin(np.isfinite(ys)))
        return verdict("diverged")
    i_min = int(np.argmin(ys))
    evidence.update(start=float(ys[0]), end=float(ys[-1]), minimum=float(ys[i_min]),
                    min_at=float(xs[i_min]), min_index=i_min)
    if train_loss is not None:
        evidence["generalization_gap"] = float(ys[-1] - train_loss)
    fitted = train_loss is not None and train_start is not None and \
        math.isfinite(train_start) and train_loss < ys[0]  # its own data still fitted
    start = max(ys[0], train_start) if fitted else ys[0]
    if ys[-1] > BLOWUP_VS_START * start or ys[-1] > BLOWUP_VS_MIN * max(ys[i_min], 1e-12):
        return verdict("diverged")
    if train_loss is not None and train_start is not None:
        worse = train_loss > TRAIN_BLOWUP * train_start and ys[-1] > ys[0]
        if not math.isfinite(train_loss) or worse:
            evidence["train_start"] = train_start
            return verdict("diverged")
    if len(ys) < MIN_POINTS:
        return verdict("inconclusive")
    # Read the settled part: from where the curve first came within a quarter of its total
    # fall from the minimum. The first fall (and a 1cycle's warm-up bumps) says little about
    # the noise around the end, where the verdict is made.
    drop = ys[0] - ys[i_min]
    settle = int(np.argmax(ys <= ys[i_min] + SETTLED * drop)) if drop > 0 else 0
    settle = min(settle, len(ys) - MIN_POINTS)
    evidence["settled_from"] = float(xs[settle])
    late = ys[settle:]
    level = float(np.median(np.abs(late))) or 1.0
    noise = noise_level(late)
    evidence["noise"] = noise
    # Minimum and end both averaged, so the noise neither deepens the minimum nor lifts the
    # end: the minimum of many noisy points sits ~2 noise below a flat curve.
    width, k = 3, max(3, len(ys) // 6)
    smoothed = _smooth(ys, width)
    i_low = int(np.argmin(smoothed))
    margin = 0.0
    if baseline is not None and math.isfinite(baseline):
        margin = max(TREND_SIGMAS * noise / math.sqrt(width), MIN_REL_CHANGE * abs(baseline))
        evidence.update(baseline=baseline,
                        beats_constant=bool(smoothed[i_low] <= baseline - margin))
    neighbours = np.maximum(late[:-2], late[2:])
    spikes = int(np.sum(late[1:-1] - neighbours > max(SPIKE_SIGMAS * noise,
                                                      MIN_REL_CHANGE * level)))
    evidence["spikes"] = spikes
    if spikes > MAX_SPIKES or noise > UNSTABLE_REL_NOISE * level:
        return verdict("unstable")
    change, stderr = _tail_change(xs, ys, noise)
    evidence.update(tail_change=change, tail_stderr=stderr)
    threshold = max(TREND_SIGMAS * stderr, MIN_REL_CHANGE * level)
    rise = float(np.mean(ys[-k:]) - smoothed[i_low])
    rise_sigma = noise * math.sqrt(1 / width + 1 / k)
    evidence["rise_after_min"] = rise
    risen = rise > max(RISE_SIGMAS * rise_sigma, MIN_REL_CHANGE * level)
    fall = float(ys[0] - smoothed[i_low])
    if risen and fall > 0 and rise > GAVE_BACK * fall and train_loss is not None and \
            float(np.mean(ys[-k:])) - train_loss < GAVE_BACK * rise and \
            learned_fraction(ys) >= MIN_LEARNED:
        evidence["gave_back"] = rise / fall
        return verdict("unstable")
    if evidence.get("beats_constant") is False:
        assert baseline is not None
        return _no_better(baseline, margin, float(smoothed[i_low]), train_loss, evidence)
    if i_low < len(ys) - k and change > 0 and risen:
        return verdict("overfitting")
    if evidence.get("beats_constant") and baseline is not None and \
            float(np.mean(ys[-k:])) > baseline - margin:  # below it once, back at it now
        evidence["back_at_constant"] = True
        return _no_better(baseline, margin, float(smoothed[i_low]), train_loss, evidence,
                          lost=True)
    learned = learned_fraction(ys)
    evidence["learned"] = learned
    # how far it fell from its first evaluation stands in for the constant where that is
    # unknown (a curve already low at its first evaluation reads as having barely learned)
    if change < -threshold:
        return verdict("underfitting")
    if learned < MIN_LEARNED and "beats_constant" not in evidence:
        return Diagnosis("underfitting", f"barely below its first evaluation (it fell "
                         f"{learned:.0%}): underfitting, or learning nothing — a larger "
                         "learning rate, less weight decay or more epochs", evidence)
    return verdict("balanced")


def _no_better(baseline: float, margin: float, lowest: float, train_loss: float | None,
               evidence: dict[str, Any], lost: bool = False) -> Diagnosis:
    """A curve that never got clearly below the constant prediction's loss: it learned
    nothing from its inputs that shows on the validation data. Where its training loss did
    get below it, what it learned does not carry over (overfitting, or data that differ);
    else it learned nothing at all yet (underfitting). With `lost`, it had got below the
    constant and ended back at it: what it learned was lost, on its training data too
    (unstable), or only on the validation data (overfitting). `lowest` is the smoothed
    curve's minimum: it may lie below the constant, but by less than `margin` (not used with
    `lost`, where it lay further below)."""
    mark = (f"not clearly better on the validation data than a constant prediction (the "
            f"targets' frequencies or mean: loss {baseline:.4g}): its lowest, {lowest:.4g} "
            f"smoothed, is not {margin:.2g} below it ({TREND_SIGMAS:g} standard errors of its "
            f"noise, at least {MIN_REL_CHANGE:.0%})")
    fitted = train_loss is not None and train_loss < baseline - margin
    if lost and fitted:
        return Diagnosis("overfitting", f"below a constant prediction's loss ({baseline:.4g}) "
                         f"at its best, and back at it by the end while its training loss "
                         f"fell to {train_loss:.4g}: overfitting — more regularization (weight "
                         "decay), or stop at the minimum", evidence)
    if lost:
        with_it = "" if train_loss is None else ", its training loss with it"
        return Diagnosis("unstable", f"below a constant prediction's loss ({baseline:.4g}) at "
                         f"its best, and back at it by the end{with_it}: it lost what it had "
                         "learned — lower the maximum learning rate or the momentum", evidence)
    if fitted:
        return Diagnosis("overfitting", f"{mark}, though its training loss fell to "
                         f"{train_loss:.4g}: what it learned does not carry over — check that "
                         "the validation inputs and labels match the training ones, then "
                         "regularize (more weight decay, fewer epochs)", evidence)
    return Diagnosis("underfitting", f"{mark}: it may have learned nothing from its inputs — try "
                     "learning rates a decade either way (one too high holds a model at the "
                     "constant as surely as one too low), more epochs or more capacity; if "
                     "none helps, check that the inputs carry the labels", evidence)


def diagnose(run: Any) -> Diagnosis:
    """Diagnose a training `History` (its validation loss), or a range test's curve
    (`RangeTestResult` or `RangeCurve`: validation loss if measured, else smoothed training
    loss, against log LR)."""
    if isinstance(run, RangeTestResult):
        run = run.runs[0]
    if isinstance(run, RangeCurve):
        lrs, losses = (run.val_lr, run.val_loss) if run.val_lr else (run.lr, run.smoothed)
        return diagnose_curve(np.log10(lrs), losses, kind="range_test")
    if isinstance(run, History):
        train_start = train_end = None
        if run.train_loss and run.eval_step:
            window = max(1, len(run.train_loss) // 10)
            train_start = float(np.mean(run.train_loss[:window]))
            train_end = float(np.mean(run.train_loss[-window:]))
        return diagnose_curve(run.eval_step, run.val_loss, train_loss=train_end,
                              train_start=train_start, baseline=run.baseline)
    raise TypeError(f"diagnose takes a History, RangeTestResult or RangeCurve, got "
                    f"{type(run).__name__}; for raw arrays use diagnose_curve(x, y)")
