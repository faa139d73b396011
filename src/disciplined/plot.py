"""Pictures of schedules and of results (histories, range tests, comparisons, searches,
interpolations), drawn with matplotlib's Agg canvas (no display, no pyplot state).

Results never draw themselves: each function here reads a result and writes a PNG or SVG."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .compare import Comparison
from .engine import History
from .interpolate import Interpolation
from .range_test import RangeTestResult
from .schedules import Schedule
from .searches import SearchResult

_FORMATS = (".png", ".svg")


def plot_schedule(
    path: str | Path,
    *,
    lr: Schedule | None = None,
    momentum: Schedule | None = None,
    weight_decay: Schedule | None = None,
    num_steps: int | None = None,
    log_y: bool = False,
    title: str | None = None,
) -> Path:
    """Draw each given schedule against the optimizer step, one panel each, to PNG or SVG.

    `num_steps` defaults to the longest `total_steps` among the schedules; schedules without
    one (cyclic, step decays) need it. `log_y` puts the LR and weight-decay axes on a log scale.
    Returns the path written.
    """
    out = Path(path)
    if out.suffix.lower() not in _FORMATS:
        raise ValueError(f"path must end in .png or .svg, got {out.name!r}")
    panels = [(name, s) for name, s in
              (("learning rate", lr), ("momentum", momentum), ("weight decay", weight_decay))
              if s is not None]
    if not panels:
        raise ValueError("give at least one of lr, momentum, weight_decay to plot")
    if num_steps is None:
        lengths = [s.total_steps for _, s in panels if s.total_steps is not None]
        if not lengths:
            raise ValueError("these schedules have no total_steps: pass num_steps")
        num_steps = max(lengths)
    steps = range(num_steps)

    fig = Figure(figsize=(7, 2.4 * len(panels) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, sched) in zip(axes, panels, strict=True):
        ax.plot(steps, sched.values(num_steps), color="tab:blue" if name != "momentum"
                else "tab:orange")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if log_y and name != "momentum":
            ax.set_yscale("log")
    axes[-1].set_xlabel("optimizer step")
    if title:
        fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def _canvas(rows: int, height: float = 2.6) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7, height * rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, 1, squeeze=False)[:, 0]


def _log_lr(ax: Any, low: float, high: float) -> None:
    """A log LR axis from `low` to `high`, labelled in plain numbers at its decades (at 1,
    2 and 5 times them when it spans less than two): minor ticks and typeset exponents
    more than halve a picture's drawing time, which a tight budget pays in the report."""
    ax.set_xscale("log")
    if 0 < low < high < 100 * low:
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    if out.suffix.lower() not in _FORMATS:
        raise ValueError(f"path must end in .png or .svg, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def plot_history(history: History, path: str | Path, *, lr: bool = True) -> Path:
    """Training and validation loss, validation metric and (with `lr`) the LR against the
    optimizer step."""
    has_metric = any(m is not None for m in history.val_metric)
    fig, axes = _canvas(1 + has_metric + lr)
    ax = axes[0]
    ax.plot(history.step, history.train_loss, color="tab:blue", alpha=0.5, label="train loss")
    if history.eval_step:
        ax.plot(history.eval_step, history.val_loss, "o-", color="tab:red", label="val loss")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(True, alpha=0.3)
    if has_metric:
        axes[1].plot(history.eval_step, history.val_metric, "o-", color="tab:green")
        axes[1].set_ylabel("val accuracy")
        axes[1].grid(True, alpha=0.3)
    if lr:
        axes[-1].plot(history.step, history.lr, color="tab:purple")
        axes[-1].set_ylabel("learning rate")
        axes[-1].grid(True, alpha=0.3)
    axes[-1].set_xlabel("optimizer step")
    return _save(fig, path)


def _until_low(curve: Sequence[float]) -> list[float]:
    """A curve up to its lowest finite point."""
    finite = [(v, i) for i, v in enumerate(curve) if math.isfinite(v)]
    return list(curve[:min(finite)[1] + 1]) if finite else []


def _useful_ylim(ax: Any, curves: Sequence[Sequence[float]], tail: float) -> None:
    """A y-range from the lowest value up to what the curves' last `tail` of points reach
    (or their start, for a range test), plus a margin: a divergence spike or the first
    steps' high loss would otherwise squash the part a decision is read from."""
    finite = [[v for v in c if math.isfinite(v)] for c in curves]
    finite = [c for c in finite if c]
    if not finite:
        return
    low = min(min(c) for c in finite)
    top = max(max(c[int(len(c) * (1 - tail)):] or c) for c in finite)
    high = max(v for c in finite for v in c)
    top = min(high, top + 0.15 * (top - low))
    margin = 0.05 * (top - low) + 1e-12
    ax.set_ylim(low - margin, top + margin)


def plot_range_test(result: RangeTestResult, path: str | Path) -> Path:
    """Loss against LR (log axis): raw and smoothed training loss, validation loss, and every
    rule's suggestion marked and labelled."""
    fig, axes = _canvas(1, height=4.2)
    ax = axes[0]
    for i, run in enumerate(result.runs):
        first = i == 0
        ax.plot(run.lr, run.loss, color="tab:blue", alpha=0.15, lw=0.8,
                label="train loss" if first else None)
        ax.plot(run.lr, run.smoothed, color="tab:blue", lw=1.4,
                label="train loss (smoothed)" if first else None)
        if run.val_lr:
            ax.plot(run.val_lr, run.val_loss, "o-", color="tab:red", ms=3, lw=1.2,
                    label="validation loss" if first else None)
    if result.mode == "exp":
        _log_lr(ax, result.start_lr, result.end_lr)
    # up to the loss the sweep started from: what lies above it is the divergence
    _useful_ylim(ax, [_until_low(run.val_loss or run.smoothed) for run in result.runs],
                 tail=1.0)
    styles = {"smith": ("tab:green", "-"), "steepest": ("tab:orange", "--"),
              "min/10": ("tab:gray", ":"), "valley": ("tab:purple", "-.")}
    for rule, sugg in result.suggestions.items():
        if sugg.value is None:
            continue
        color, style = styles.get(rule, ("black", "--"))
        name = "Smith (ours, max_lr)" if rule == "smith" else rule
        ax.axvline(sugg.value, color=color, ls=style, lw=1.3, label=f"{name}: {sugg.value:.3g}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    decay = "" if result.weight_decay is None else f", at weight decay {result.weight_decay:g}"
    ax.set_title(f"LR range test (suggestion read from the {result.source} loss{decay})")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_comparison(comparison: Comparison, path: str | Path, title: str = "") -> Path:
    """Every trial's validation loss against the step, labelled with its rank and verdict."""
    fig, axes = _canvas(1, height=4.2)
    ax = axes[0]
    ranks = {r.label: r for r in comparison.ranking}
    for result in comparison.results:
        r = ranks[result.label]
        if result.history is None or not result.history.eval_step:
            continue
        place = "failed" if r.rank is None else f"#{r.rank}"
        ax.plot(result.history.eval_step, result.history.val_loss, "o-", ms=3, lw=1.3,
                label=f"{place} {result.label} ({r.verdict})")
    # the second half of the best third of the runs, where the choice is made, fills the
    # plot; runs that never learned and the first steps' high loss go off its top
    curves = sorted((res.history.val_loss for res in comparison.results
                     if res.history and res.history.eval_step
                     and math.isfinite(res.history.val_loss[-1])), key=lambda c: c[-1])
    _useful_ylim(ax, curves[:max(2, (len(curves) + 2) // 3)], tail=0.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation loss")
    if title:
        ax.set_title(textwrap.fill(title, 110), fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_interpolation(result: Interpolation, path: str | Path) -> Path:
    """Training and validation loss along the line between two solutions."""
    fig, axes = _canvas(1, height=3.6)
    ax = axes[0]
    ax.plot(result.alphas, result.train_loss, "o-", ms=3, label="train loss")
    ax.plot(result.alphas, result.val_loss, "o-", ms=3, label="validation loss")
    for x, name in ((0.0, "b"), (1.0, "a")):
        ax.axvline(x, color="gray", ls=":", lw=1)
        ax.annotate(name, (x, 1.0), xycoords=("data", "axes fraction"), ha="center",
                    va="bottom")
    ax.set_xlabel("alpha (theta = alpha * a + (1 - alpha) * b)")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def plot_range_tests(tests: Mapping[str, RangeTestResult], path: str | Path,
                     title: str = "") -> Path:
    """Several range tests on one axis (e.g. one per weight decay, Smith 2018 Figure 10):
    validation loss where measured, else smoothed training loss, against LR."""
    fig, axes = _canvas(1, height=4.2)
    ax = axes[0]
    for label, result in tests.items():
        run = result.runs[0]
        x, y = (run.val_lr, run.val_loss) if run.val_lr else (run.lr, run.smoothed)
        max_lr = "" if result.max_lr is None else f", max_lr {result.max_lr:.3g}"
        ax.plot(x, y, lw=1.3, label=f"{label}{max_lr}")
    _log_lr(ax, min((r.start_lr for r in tests.values()), default=1.0),
            max((r.end_lr for r in tests.values()), default=10.0))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(textwrap.fill(title, 110), fontsize=8)
    ax.grid(True, alpha=0.3, which="both")
    if tests:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_search(result: SearchResult, path: str | Path) -> Path:
    """A search's trials together (or, for a search by range tests, their curves), titled
    with its decision's reason."""
    title = f"{result.name}: {result.reason}"
    if not result.comparisons:
        return plot_range_tests(result.range_tests, path, title)
    return plot_comparison(result.merged(), path, title)
