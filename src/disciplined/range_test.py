"""Smith's learning-rate range test (Smith 2018, Section 4.1; Smith 2017, Section 3.3).

Train for a few hundred steps while the LR grows from tiny to huge, record the loss, and read
off the largest LR at which the loss still clearly falls. The model, the optimizer and every
RNG are put back exactly as they were afterwards, whatever happens.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from . import distributed, schedules
from .curves import SMOOTHING, Ema, noise_level
from .defaults import (
    CYCLIC_DIV,
    END_LR,
    MOMENTUM,
    NUM_STEPS,
    ONE_CYCLE_DIV,
    START_LR,
    start_weight_decay,
)
from .engine import (
    BatchStream,
    Data,
    LossBuffer,
    build_optimizer,
    evaluate,
    pick_device,
    rng_state,
    set_rng_state,
)
from .hyper import HyperScheduler
from .policies import check_hyperparameters
from .tasks import ClassGuard, Task, TaskError, blamed, loader_batch

Source = Literal["train", "val"]
Mode = Literal["exp", "linear"]
# Stop when the smoothed loss exceeds this multiple of its best (fastai also uses 4).
DIVERGE_FACTOR = 4.0
# Smith's rule: "still clearly decreasing" = a slope at least this fraction of the steepest.
CLEAR_DECREASE = 0.3
# ... and at least half a decade below the minimum, where the loss is already ragged: a range
# test that keeps training reaches its minimum with the loss still falling steeply.
MIN_BACKOFF = 10**0.5
RULES = ("smith", "steepest", "min/10", "valley")
# The sweep's first tenth (at least 10 steps) is not read: there the LR is tiny, the smoothing
# has seen few values and a model's first steps move its loss for reasons the LR does not
# (a regression MLP's first steps' noise read as a clear decrease chose 5.3e-7).
SKIP_FRACTION = 0.1
SKIP_MIN = 10
# A fall of the smoothed loss counts only beyond this many noise levels of the curve itself...
CLEAR_SIGMAS = 3.0
# ... and when it is at least this fraction of the loss: less is what any model gets from
# learning its outputs' mean or the label frequencies (a linear model on inputs that say
# nothing about the labels falls 0.7% that way), not a sign that it learns the task.
MIN_RELATIVE_DROP = 0.02


def skipped(n: int) -> int:
    """How many of a curve's first `n` points are not read: a tenth, at least SKIP_MIN, but
    never more than a fifth (a validation curve has one point per few steps)."""
    return min(max(SKIP_MIN, math.ceil(SKIP_FRACTION * n)), n // 5)


# --- suggestion rules: pure functions of the curve -------------------------------------------


def _slopes(lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """d loss / d log(lr): the same for exponential and linear sweeps."""
    return np.gradient(losses, np.log(lrs)) if len(lrs) > 1 else np.zeros(len(lrs))


def _read_part(lrs: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve less its first points (`skipped`), which every rule leaves unread, as the
    peers' own suggestions do: fastai drops a tenth of the sweep, torch-lr-finder and
    Lightning its first 10 points. Read whole, a smoothed curve's first steps (the average
    of few values) made the steepest descent at the sweep's very start (1e-7)."""
    start = skipped(len(lrs))
    return lrs[start:], losses[start:]


def rule_smith(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The largest LR before the loss minimum where the loss still clearly decreases."""
    lrs, losses = _read_part(lrs, losses)
    if len(lrs) == 0:
        return None
    i_min = int(np.argmin(losses))
    slopes = _slopes(lrs, losses)[: i_min + 1]
    if len(slopes) < 2 or slopes.min() >= 0:
        return None
    clear = np.nonzero(slopes <= CLEAR_DECREASE * slopes.min())[0]
    return float(min(lrs[clear[-1]], lrs[i_min] / MIN_BACKOFF))


def rule_steepest(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The LR of the steepest descent (torch-lr-finder's and Lightning's suggestion)."""
    lrs, losses = _read_part(lrs, losses)
    if len(lrs) == 0:
        return None
    i_min = int(np.argmin(losses))
    slopes = _slopes(lrs, losses)[: i_min + 1]
    if len(slopes) < 2 or slopes.min() >= 0:
        return None
    return float(lrs[int(np.argmin(slopes))])


def rule_min_div_10(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """A tenth of the LR at the loss minimum (the early fastai rule of thumb)."""
    lrs, losses = _read_part(lrs, losses)
    return float(lrs[int(np.argmin(losses))] / 10.0) if len(lrs) else None


def rule_valley(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """fastai's valley: the longest run of decreasing loss, then a point about halfway through
    its middle third."""
    lrs, losses = _read_part(lrs, losses)
    n = len(losses)
    if n < 3:
        return None
    longest = [1] * n
    best_end, best_start = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[best_end]:
            best_end, best_start = i, i - longest[i]
    third = (best_end - best_start) / 3
    return float(lrs[best_start + int(third) + int(third / 2)])


@dataclasses.dataclass(frozen=True)
class Reading:
    """What a sweep shows, beyond any rule's number: whether the loss clearly fell (beyond the
    curve's own noise, the first points not read), why we say so, and `anchor`, the highest LR
    worth training at: where the loss is lowest when it fell, else where it starts to rise
    (or the sweep's end)."""

    conclusive: bool
    why: str
    anchor: float
    drop: float
    noise: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_sweep(lrs: list[float] | np.ndarray, curve: list[float] | np.ndarray,
               noise: float) -> Reading:
    """Read one curve (smoothed training loss, or validation loss) whose points carry noise of
    standard deviation `noise`: a fall counts when the lowest point lies more than
    CLEAR_SIGMAS noise levels of a difference below where the read part starts."""
    x = np.asarray(lrs, dtype=float)
    y = np.asarray(curve, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(y) < 3:
        return Reading(False, f"the sweep recorded only {len(y)} finite losses (is the loss "
                              "NaN from the start? check the data and the loss function)",
                       float(x[-1]) if len(x) else math.nan, 0.0, noise)
    start = skipped(len(y))
    head = max(3, (len(y) - start) // 10)
    level = float(np.median(y[start:start + head]))
    margin = CLEAR_SIGMAS * noise * math.sqrt(2)
    i_min = start + int(np.argmin(y[start:]))
    drop = level - float(y[i_min])
    span = f"from lr {x[start]:.2g} to {x[-1]:.2g}"
    small = drop <= MIN_RELATIVE_DROP * abs(level)
    if drop > margin and not small:
        times = f"{drop / noise:.0f}x its noise" if noise > 0 else "noise-free"
        return Reading(True, f"the loss falls by {drop:.3g} ({times}) to its lowest at lr "
                             f"{x[i_min]:.3g}", float(x[i_min]), drop, noise)
    rising = np.nonzero(y[start:] > level + margin)[0]
    anchor = float(x[start + rising[0]]) if len(rising) else float(x[-1])
    end = f", and rises from lr {anchor:.2g}" if len(rising) else ""
    flat = f"falls only {100 * drop / abs(level):.1f}% {span}" if drop > margin else \
        f"stays within its noise ({noise:.2g}) {span}"
    return Reading(False, f"the loss {flat}{end}: the model did not visibly learn during "
                          "the sweep, so no rule can read a learning rate from it", anchor,
                   drop, noise)


def smoothed_noise(raw: list[float] | np.ndarray, smoothing: float = SMOOTHING) -> float:
    """The noise of the EMA-smoothed curve, from the raw losses' noise: an EMA of weight b
    over white noise of std s has std s * sqrt((1 - b) / (1 + b))."""
    return noise_level(raw) * math.sqrt((1 - smoothing) / (1 + smoothing))


_RULE_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float | None]] = {
    "smith": rule_smith, "steepest": rule_steepest, "min/10": rule_min_div_10,
    "valley": rule_valley,
}


def suggest(lrs: list[float], losses: list[float]) -> dict[str, float | None]:
    """Every rule's max-LR suggestion for one (smoothed) curve."""
    x, y = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    keep = np.isfinite(y)
    if not keep.any():  # a loss NaN from the start: no rule has anything to read
        return {name: None for name in _RULE_FUNCTIONS}
    return {name: fn(x[keep], y[keep]) for name, fn in _RULE_FUNCTIONS.items()}


# --- results ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RangeCurve:
    """One sweep: per step LR, momentum, raw and smoothed training loss; per evaluation the
    validation loss and metric; the weight decay it ran at (`decay_of`; None in files
    written before it was recorded)."""

    lr: list[float]
    momentum: list[float | None]
    loss: list[float]
    smoothed: list[float]
    val_step: list[int]
    val_lr: list[float]
    val_loss: list[float]
    val_metric: list[float | None]
    stop_reason: str
    seed: int
    weight_decay: float | None = None


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """A rule's suggested max LR: the median over repeats, with each repeat's value."""

    rule: str
    value: float | None
    values: list[float | None]

    @property
    def spread(self) -> tuple[float, float] | None:
        found = [v for v in self.values if v is not None]
        return (min(found), max(found)) if found else None


@dataclasses.dataclass(frozen=True)
class RangeTestResult:
    """Curves of every repeat, every rule's suggestion, and the default choice.

    `max_lr` is Smith's rule (median over repeats), read from the validation loss when a
    validation set was given (`source == "val"`), else from the smoothed training loss.
    The suggestion holds for `total_batch_size` (`batch_size` per process x `world_size`
    data-parallel processes): a larger total batch takes a larger LR.
    """

    runs: list[RangeCurve]
    suggestions: dict[str, Suggestion]
    source: Source
    mode: Mode
    start_lr: float
    end_lr: float
    batch_size: int | None = None
    world_size: int = 1

    @property
    def total_batch_size(self) -> int | None:
        return None if self.batch_size is None else self.batch_size * self.world_size

    @property
    def max_lr(self) -> float | None:
        return self.suggestions["smith"].value

    @property
    def min_lr(self) -> float | None:
        """max_lr / 10, the lower end of a 1cycle."""
        return None if self.max_lr is None else self.max_lr / ONE_CYCLE_DIV

    @property
    def cyclic_min_lr(self) -> float | None:
        """max_lr / 4, the lower bound for cyclical learning rates."""
        return None if self.max_lr is None else self.max_lr / CYCLIC_DIV

    @property
    def stop_reason(self) -> str:
        return self.runs[0].stop_reason

    @property
    def weight_decay(self) -> float | None:
        """The weight decay the sweeps ran at: the suggestion holds for it, as another
        weight decay moves the curve (Smith 2018, Section 4.4, compares range tests at
        several)."""
        return self.runs[0].weight_decay

    @property
    def reading(self) -> Reading:
        """What the first sweep shows, read from the same curve as the suggestions."""
        run = self.runs[0]
        if self.source == "val":
            return read_sweep(run.val_lr, run.val_loss, noise_level(run.val_loss))
        smoothed = np.asarray(run.smoothed, dtype=float)
        if not np.isfinite(smoothed).any():
            return read_sweep(run.lr, run.smoothed, 0.0)  # says no finite loss was recorded
        lowest = int(np.nanargmin(np.where(np.isfinite(smoothed), smoothed, np.nan)))
        # the noise before the lowest point, not the divergence's spikes after it
        upto = run.loss[:lowest + 1] if lowest >= 10 else run.loss
        return read_sweep(run.lr, run.smoothed,
                          smoothed_noise([v for v in upto if math.isfinite(v)]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_lr": self.max_lr, "min_lr": self.min_lr, "cyclic_min_lr": self.cyclic_min_lr,
            "source": self.source, "mode": self.mode, "start_lr": self.start_lr,
            "end_lr": self.end_lr, "batch_size": self.batch_size,
            "world_size": self.world_size, "total_batch_size": self.total_batch_size,
            "weight_decay": self.weight_decay,
            "suggestions": {k: dataclasses.asdict(v) for k, v in self.suggestions.items()},
            "reading": self.reading.to_dict(),
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RangeTestResult:
        """The result `to_dict` described (its derived values are recomputed)."""
        return cls(
            # a per-step time some journals of 2026-11-23 stored is not read any more
            runs=[RangeCurve(**{k: v for k, v in r.items() if k != "step_seconds"})
                  for r in data["runs"]],
            suggestions={k: Suggestion(**v) for k, v in data["suggestions"].items()},
            source=data["source"], mode=data["mode"], start_lr=data["start_lr"],
            end_lr=data["end_lr"], batch_size=data.get("batch_size"),
            world_size=data.get("world_size", 1))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> RangeTestResult:
        return cls.from_dict(json.loads(text))


# --- the test --------------------------------------------------------------------------------


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    train_data: Data,
    *,
    val_data: Data | None = None,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    num_steps: int = NUM_STEPS,
    mode: Mode = "exp",
    momentum: tuple[float, float] | None = None,
    batch_size: int = 128,
    val_every: int = 5,
    val_samples: int = 512,
    metric: str | None = None,
    diverge_factor: float | None = DIVERGE_FACTOR,
    smoothing: float = SMOOTHING,
    repeats: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
    keep_state_on_disk: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> RangeTestResult:
    """Run the LR range test and suggest `max_lr` / `min_lr` (Smith 2018, Section 4.1).

    The LR sweeps from `start_lr` to `end_lr` over `num_steps` optimizer steps
    (exponentially or linearly); `momentum=(0.95, 0.85)` sweeps momentum down at the same
    time. Weight decay stays as the optimizer has it. With `val_data`, the loss on a fixed
    subset of `val_samples` is measured every `val_every` steps and the suggestion is read
    from it. The test stops when the smoothed loss exceeds `diverge_factor` times its best
    (None: never) or is not finite. With `repeats=n`, n sweeps with different data orders
    (seeds `seed .. seed+n-1`) from the same weights give medians and spreads.
    Afterwards the model, the optimizer and the RNGs are exactly as before, also on an
    exception or KeyboardInterrupt (the copy stays in memory unless `keep_state_on_disk`).
    """
    sweep = schedules.lr_range(start_lr, end_lr, num_steps, mode=mode)
    if repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats}")
    if val_every < 1:
        raise ValueError(f"val_every must be an int >= 1, got {val_every}")
    if diverge_factor is not None and diverge_factor <= 1:
        raise ValueError(f"diverge_factor must be > 1 or None, got {diverge_factor}")
    Ema(smoothing)  # checks it before any work
    mom_sched = None
    if momentum is not None:
        mom_sched = schedules.linear(momentum[0], momentum[1], num_steps)
    # The model stays where it is unless told otherwise: restoring must not move it.
    dev = pick_device(device) if device is not None else _device_of(model)
    model.to(dev)
    saved = _save_state(model, optimizer, keep_state_on_disk)
    runs = []
    try:
        for r in range(repeats):
            if r:
                _load_state(model, optimizer, saved)
            runs.append(_sweep(model, optimizer, loss_fn, train_data, val_data, sweep,
                               mom_sched, batch_size, val_every, val_samples, metric,
                               diverge_factor, smoothing, seed + r, dev, progress))
    finally:
        _load_state(model, optimizer, saved)
        if saved.get("path"):
            os.unlink(saved["path"])
    return range_test_result(runs, source="val" if val_data is not None else "train",
                             mode=mode, start_lr=start_lr, end_lr=end_lr,
                             batch_size=batch_size, world_size=distributed.world().size)


def range_test_result(runs: list[RangeCurve], *, source: Source, mode: Mode,
                      start_lr: float, end_lr: float, batch_size: int | None,
                      world_size: int = 1) -> RangeTestResult:
    """Every rule's suggestion (the median over `runs`) from sweeps however they were run:
    by `lr_range_test`, or inside Lightning's or Hugging Face's trainer."""
    per_run = [suggest(run.val_lr, run.val_loss) if source == "val"
               else suggest(run.lr, run.smoothed) for run in runs]
    suggestions = {}
    for rule in RULES:
        values = [s[rule] for s in per_run]
        found = [v for v in values if v is not None]
        median = float(np.exp(statistics.median(np.log(found)))) if found else None
        suggestions[rule] = Suggestion(rule, median, values)
    return RangeTestResult(runs, suggestions, source, mode, float(start_lr), float(end_lr),
                           batch_size, world_size)


class SweepRecord:
    """A sweep's training-loss curve, read one optimizer step at a time as it runs: the LR
    and momentum the schedules gave that step, the raw and smoothed loss, and the stop the
    loss calls for (not finite, or diverged). The one reading every sweep shares."""

    def __init__(self, sweep: schedules.Schedule, momentum: schedules.Schedule | None,
                 smoothing: float = SMOOTHING,
                 diverge_factor: float | None = DIVERGE_FACTOR,
                 weight_decay: float | None = None) -> None:
        if diverge_factor is not None and diverge_factor <= 1:
            raise ValueError(f"diverge_factor must be > 1 or None, got {diverge_factor}")
        self.sweep, self.momentum, self.diverge_factor = sweep, momentum, diverge_factor
        self.weight_decay = weight_decay
        self.ema = Ema(smoothing)
        self.best = math.inf
        self.lr: list[float] = []
        self.moms: list[float | None] = []
        self.raw: list[float] = []
        self.smoothed: list[float] = []

    def add(self, step: int, value: float) -> str:
        """Record the loss of optimizer step `step`; the reason to stop now ("" for none)."""
        self.lr.append(self.sweep(step))
        self.moms.append(None if self.momentum is None else self.momentum(step))
        self.raw.append(value)
        self.smoothed.append(self.ema.update(value))
        if not math.isfinite(self.smoothed[-1]):
            return "loss not finite"
        self.best = min(self.best, self.smoothed[-1])
        if self.diverge_factor is not None and \
                self.smoothed[-1] > self.diverge_factor * self.best:
            return f"diverged (smoothed loss > {self.diverge_factor:g}x its best)"
        return ""

    def curve(self, stop_reason: str, seed: int, val_step: list[int] | None = None,
              val_lr: list[float] | None = None, val_loss: list[float] | None = None,
              val_metric: list[float | None] | None = None) -> RangeCurve:
        return RangeCurve(self.lr, self.moms, self.raw, self.smoothed, val_step or [],
                          val_lr or [], val_loss or [], val_metric or [],
                          stop_reason or "end_lr reached", seed, self.weight_decay)


def decay_of(optimizer: torch.optim.Optimizer) -> float:
    """The weight decay an optimizer trains at: the largest of its parameter groups' (the
    groups frameworks exempt from decay, biases and norms, keep 0)."""
    return max(float(group.get("weight_decay", 0.0)) for group in optimizer.param_groups)


def task_range_test(task: Task, *, weight_decay: float | None = None,
                    momentum: tuple[float, float] = MOMENTUM, batch_size: int | None = None,
                    val: bool = False, start_lr: float = START_LR, end_lr: float = END_LR,
                    num_steps: int = NUM_STEPS, mode: Mode = "exp", repeats: int = 1,
                    seed: int = 0, device: str | torch.device | None = None,
                    progress: Callable[[int, int, float], None] | None = None
                    ) -> RangeTestResult:
    """The range test on a task, as `find-lr` and `tune` run it: fresh weights drawn with
    `seed`, the task's optimizer at `weight_decay` (default: the optimizer's own starting
    value, defaults.START_WEIGHT_DECAY), momentum swept over `momentum`, the suggestion read
    from the validation loss with `val`, else from the training loss. A framework's task
    runs its own range test (on the training loss, once, at its batch size)."""
    weight_decay = start_weight_decay(task.optimizer, weight_decay)
    check_hyperparameters(momentum=momentum, weight_decay=weight_decay, batch_size=batch_size)
    if task.runner is not None:
        asked = [what for what, given in (("the validation loss (val)", val),
                                          ("repeats", repeats > 1),
                                          ("another batch size", batch_size not in
                                           (None, task.batch_size))) if given]
        if asked:
            raise TaskError(f"{task.source}: the range test on a {task.runner.framework} task "
                            f"reads the training loss, once, at the framework's batch size: "
                            f"{', '.join(asked)} cannot be asked")
        return task.runner.range_test(
            weight_decay=weight_decay, momentum=momentum, seed=seed,
            device=None if device is None else str(device), num_steps=num_steps,
            start_lr=start_lr, end_lr=end_lr, mode=mode)
    train, val_data = task.datasets()
    loader_batch(train, batch_size, task.source, "swept")
    model = task.model(seed)
    optimizer = build_optimizer(task.optimizer, model, momentum=momentum[0],
                                weight_decay=weight_decay)
    return lr_range_test(model, optimizer, task.loss_fn, train,
                         val_data=val_data if val else None, start_lr=start_lr,
                         end_lr=end_lr, num_steps=num_steps, mode=mode, momentum=momentum,
                         batch_size=batch_size or task.batch_size, metric=task.metric,
                         repeats=repeats, seed=seed, device=device, progress=progress)


def _sweep(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable[..., Any],
           train_data: Data, val_data: Data | None, sweep: schedules.Schedule,
           mom_sched: schedules.Schedule | None, batch_size: int, val_every: int,
           val_samples: int, metric: str | None, diverge_factor: float | None,
           smoothing: float, seed: int, device: torch.device,
           progress: Callable[[int, int, float], None] | None) -> RangeCurve:
    torch.manual_seed(seed)
    net = distributed.wrap(model)  # DDP under torchrun; `model` itself otherwise
    hs = HyperScheduler(optimizer, lr=sweep, momentum=mom_sched)
    batches = BatchStream(train_data, batch_size, seed=seed, device=device)
    guard = ClassGuard(loss_fn)
    was_training = model.training
    model.train()
    record = SweepRecord(sweep, mom_sched, smoothing, diverge_factor,
                         weight_decay=decay_of(optimizer))
    val_step: list[int] = []
    val_lr: list[float] = []
    val_loss: list[float] = []
    val_metric: list[float | None] = []
    reason = ""
    total = sweep.total_steps or 0
    losses = LossBuffer()

    def read(first: int) -> str:
        """The losses of steps `first`... brought to the host at once (every rank the same
        mean, so all stop at the same step) and read one by one as if each had been read
        at its own step: the stop a step calls for ("" for none)."""
        for step, value in enumerate(losses.flush(), start=first):
            stop = record.add(step, value)
            if progress is not None:
                progress(step, total, record.smoothed[-1])
            if stop:
                return stop
        return ""

    try:
        first = 0
        for step in range(total):
            x, y = batches.next()
            with blamed(x, y, "range test step", step):
                out = net(x)
                batches.check_targets(guard, out, f"at range test step {step}")
                loss = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            losses.add(loss)
            # the steps after one that stops the sweep are trained but never read: the
            # caller restores the weights, and the curve ends where it stopped
            loss.backward()
            optimizer.step()
            hs.step()
            evaluate_now = val_data is not None and (step + 1) % val_every == 0
            if losses.full() or evaluate_now or step == total - 1:
                reason = read(first)
                first = step + 1
                if reason:
                    break
            if evaluate_now:
                assert val_data is not None
                v_loss, v_metric = evaluate(model, val_data, loss_fn, metric, device,
                                            max_samples=val_samples)
                val_step.append(step)
                val_lr.append(sweep(step))
                val_loss.append(v_loss)
                val_metric.append(v_metric)
    finally:
        model.train(was_training)
    return record.curve(reason, seed, val_step, val_lr, val_loss, val_metric)


def _device_of(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _save_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                on_disk: bool) -> dict[str, Any]:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    saved: dict[str, Any] = {"rng": rng_state(), "training": model.training}
    if on_disk:
        fd, path = tempfile.mkstemp(prefix="disciplined-range-test-", suffix=".pt")
        os.close(fd)
        torch.save(state, path)
        saved["path"] = path
    else:
        saved["state"] = copy.deepcopy(state)
    return saved


def _load_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                saved: dict[str, Any]) -> None:
    state = saved.get("state")
    if state is None:
        state = torch.load(saved["path"], weights_only=False)
    model.load_state_dict(state["model"])
    # load_state_dict copies into the optimizer: the saved copy stays pristine for repeats
    optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
    model.train(saved["training"])
    set_rng_state(saved["rng"])
