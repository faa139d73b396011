"""Pure numerics over loss curves, shared by the range test and the diagnosis: the smoothing
the range test reads its sweep through, and the noise level a curve carries. numpy only."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# EMA weight of the range test's loss smoothing (bias-corrected): ~20 steps of memory.
SMOOTHING = 0.95


class Ema:
    """A bias-corrected exponential moving average, one value at a time (the first values
    are not dragged towards zero). The range test feeds it while it sweeps, so it can stop
    on the smoothed loss; `smooth` runs the same arithmetic over a whole curve."""

    def __init__(self, beta: float = SMOOTHING) -> None:
        if not 0 <= beta < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {beta}")
        self.beta, self._avg, self._count = beta, 0.0, 0

    def update(self, value: float) -> float:
        """Add `value`; return the smoothed value up to and including it."""
        self._count += 1
        self._avg = self.beta * self._avg + (1 - self.beta) * value
        return self._avg / (1 - self.beta ** self._count)


def smooth(values: Sequence[float] | np.ndarray, beta: float = SMOOTHING) -> np.ndarray:
    """The bias-corrected EMA of a whole curve (what the range test records as `smoothed`)."""
    ema = Ema(beta)
    return np.array([ema.update(float(v)) for v in values], dtype=float)


def noise_level(y: Sequence[float] | np.ndarray) -> float:
    """Standard deviation of the noise around a smooth trend.

    Each point is compared with the median of its four neighbours (two each side): a local
    trend cancels and an isolated spike moves no neighbour's median far. The largest 10% of
    residuals (the spikes themselves) are dropped and the rest's RMS is rescaled: for white
    noise of std s that trimmed RMS is 0.898 s (measured on 2e6 normal samples). It is far
    steadier on 20 points than a median absolute deviation.
    """
    y = np.asarray(y, dtype=float)
    if len(y) < 5:
        return float(np.std(np.diff(y)) / math.sqrt(2)) if len(y) > 2 else 0.0
    neighbours = np.stack([y[:-4], y[1:-3], y[3:-1], y[4:]])
    residuals = y[2:-2] - np.median(neighbours, axis=0)
    size = np.abs(residuals)
    kept = residuals[size <= np.quantile(size, 0.9)]
    return float(np.sqrt(np.mean(kept**2))) / 0.898
