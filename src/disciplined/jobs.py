"""The command line's jobs as library functions: each runs one piece of the library, writes
its files the same way (a JSON of the result and its picture, on rank 0 only under torchrun)
and returns the result with the paths written. The CLI parses, calls one of these, prints.

`tune` is the recipe's own (`disciplined.recipe.tune`), which writes its study the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from . import distributed, schedules
from .defaults import FALLBACK_EPOCHS, MOMENTUM, start_weight_decay
from .engine import History, steps_per_epoch
from .executors import Executor
from .interpolate import Interpolation, alpha_grid, interpolate
from .plot import plot_history, plot_interpolation, plot_range_test, plot_schedule, plot_search
from .policies import check_policy, policy_schedules
from .range_test import END_LR, NUM_STEPS, START_LR, Mode, RangeTestResult, task_range_test
from .searches import (
    SearchResult,
    WeightDecayMode,
    batch_size_search,
    momentum_search,
    schedule_search,
    weight_decay_search,
)
from .study import MODEL_FILE, output_folder
from .tasks import load_task
from .trials import Budget, Keep, TrialResult, TrialSpec, build_trainer, epoch_steps
from .trials import train as train_spec

R = TypeVar("R")
StepProgress = Callable[[int, int, float], None]


@dataclasses.dataclass(frozen=True)
class Job(Generic[R]):
    """A job's result and the files it wrote (none on ranks other than 0)."""

    result: R
    files: tuple[Path, ...]


def _write(out: Path, name: str, text: str, picture: str,
           draw: Callable[[Path], Path]) -> tuple[Path, ...]:
    """`out/name` (the result as JSON) and `out/picture` drawn by `draw`; rank 0 only."""
    if not distributed.world().is_main:
        return ()
    out.mkdir(parents=True, exist_ok=True)
    data = out / name
    data.write_text(text)
    return data, draw(out / picture)


def find_lr(task: str, *, out: Path, val: bool = False, start_lr: float = START_LR,
            end_lr: float = END_LR, steps: int = NUM_STEPS, mode: Mode = "exp",
            repeats: int = 1, momentum: tuple[float, float] = MOMENTUM,
            weight_decay: float | None = None, batch_size: int | None = None, seed: int = 0,
            data_dir: str | None = None,
            progress: StepProgress | None = None) -> Job[RangeTestResult]:
    """The LR range test on a task: lr_range.json and lr_range.png. Without `weight_decay`,
    the task's optimizer's starting value (defaults.START_WEIGHT_DECAY)."""
    output_folder(out)
    result = task_range_test(load_task(task, data_dir=data_dir).loaded(),
                             weight_decay=weight_decay,
                             momentum=momentum, batch_size=batch_size, val=val,
                             start_lr=start_lr, end_lr=end_lr, num_steps=steps, mode=mode,
                             repeats=repeats, seed=seed, progress=progress)
    files = _write(out, "lr_range.json", result.to_json(), "lr_range.png",
                   lambda path: plot_range_test(result, path))
    return Job(result, files)


def train(task: str, *, max_lr: float, out: Path, policy: str = "one-cycle",
          momentum: tuple[float, float] = MOMENTUM, weight_decay: float | None = None,
          epochs: float | None = None, batch_size: int | None = None, seed: int = 0,
          data_dir: str | None = None, progress: bool = False, amp: str = "auto",
          compile: bool = False, keep: Keep = "last") -> Job[TrialResult]:
    """Train a task from fresh weights with a named policy, evaluating the whole validation
    set once per epoch: history.json, curves.png and model.pt (the weights `keep` names:
    `TrialSpec.keep`). Without `weight_decay`, the task's optimizer's start
    (defaults.START_WEIGHT_DECAY); without `epochs`, the task's own length, as `tune`
    trains it (else FALLBACK_EPOCHS)."""
    output_folder(out, model_of="train")
    loaded = load_task(task, data_dir=data_dir).loaded()
    if keep == "best" and loaded.runner is not None:
        raise ValueError("--keep best reads our engine's evaluations: a Lightning or Hugging "
                         "Face task's own trainer keeps its last weights (its checkpoint "
                         "callbacks can keep the best); run without --keep best")
    batch_size = batch_size or loaded.batch_size
    weight_decay = start_weight_decay(loaded.optimizer, weight_decay)
    if epochs is None:
        epochs = loaded.epochs or FALLBACK_EPOCHS
    per_epoch = epoch_steps(loaded, batch_size)
    spec = TrialSpec(task, max_lr=max_lr, budget=Budget(epochs=epochs),
                     policy=check_policy(policy), momentum=momentum,
                     weight_decay=weight_decay, batch_size=batch_size, seed=seed,
                     eval_every=per_epoch, eval_samples=None, data_dir=data_dir, amp=amp,
                     compile=compile, keep=keep)
    result, model = train_spec(spec, task=loaded, progress=progress)
    history = result.history
    if history is None:
        raise RuntimeError("a finished training always has a history")
    files = _write(out, "history.json", history.to_json(), "curves.png",
                   lambda path: plot_history(history, path))
    if files:
        torch.save(model.state_dict(), out / MODEL_FILE)
        files += (out / MODEL_FILE,)
    return Job(result, files)


def _one_process() -> None:
    if distributed.launched():  # each rank would run the whole search and write the same files
        raise ValueError("disciplined search runs as one process, not under torchrun: spread "
                         "its trials with --executor ray, or run `disciplined tune` under "
                         "torchrun")


def _search_files(result: SearchResult, out: Path) -> Job[SearchResult]:
    return Job(result, _write(out, "search.json", result.to_json(), "search.png",
                              lambda path: plot_search(result, path)))


def search_momentum(task: str, *, out: Path, epochs: float = 3, max_lr: float | None = None,
                    policy: str = "one-cycle", weight_decay: float | None = None,
                    seed: int = 0, data_dir: str | None = None, batch_size: int | None = None,
                    executor: Executor | None = None) -> Job[SearchResult]:
    """Momentum short runs (searches.momentum_search): search.json and search.png. Without
    `weight_decay`, the task's optimizer's start (defaults.START_WEIGHT_DECAY)."""
    _one_process()
    output_folder(out)
    return _search_files(momentum_search(
        task, budget=Budget(epochs=epochs), max_lr=max_lr, policy=check_policy(policy),
        weight_decay=weight_decay, seed=seed, data_dir=data_dir, batch_size=batch_size,
        executor=executor), out)


def search_weight_decay(task: str, *, out: Path, epochs: float = 3,
                        max_lr: float | None = None, guess: float | None = None,
                        mode: WeightDecayMode = "grid", seed: int = 0,
                        data_dir: str | None = None, batch_size: int | None = None,
                        executor: Executor | None = None) -> Job[SearchResult]:
    """Weight-decay short runs (searches.weight_decay_search): search.json and search.png."""
    _one_process()
    output_folder(out)
    return _search_files(weight_decay_search(
        task, budget=Budget(epochs=epochs), max_lr=max_lr, guess=guess, mode=mode, seed=seed,
        data_dir=data_dir, batch_size=batch_size, executor=executor), out)


def search_batch_size(task: str, *, out: Path, sizes: list[int], seconds: float = 20.0,
                      seed: int = 0, data_dir: str | None = None,
                      executor: Executor | None = None) -> Job[SearchResult]:
    """Batch sizes at equal wall time (searches.batch_size_search): search.json and .png."""
    _one_process()
    output_folder(out)
    return _search_files(batch_size_search(task, sizes=sizes, seconds=seconds, seed=seed,
                                           data_dir=data_dir, executor=executor), out)


def search_schedule(task: str, *, out: Path, epochs: float = 3, max_lr: float | None = None,
                    seed: int = 0, data_dir: str | None = None, batch_size: int | None = None,
                    executor: Executor | None = None) -> Job[SearchResult]:
    """Every policy at an equal budget (searches.schedule_search): search.json and .png."""
    _one_process()
    output_folder(out)
    return _search_files(schedule_search(task, budget=Budget(epochs=epochs), max_lr=max_lr,
                                         seed=seed, data_dir=data_dir, batch_size=batch_size,
                                         executor=executor), out)


def interpolate_models(state_a: Path, state_b: Path, task: str, *, out: Path,
                       points: int = 21, recompute_bn: bool = False,
                       data_dir: str | None = None) -> Job[Interpolation]:
    """The loss along the line between two saved models: interpolation.json and .png."""
    output_folder(out)
    loaded = load_task(task, data_dir=data_dir)
    a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (state_a, state_b))
    result = interpolate(a, b, loaded.model, loaded.datasets(), loss_fn=loaded.loss_fn,
                         metric=loaded.metric, alphas=alpha_grid(points),
                         recompute_bn=recompute_bn)
    return Job(result, _write(out, "interpolation.json", result.to_json(),
                              "interpolation.png", lambda p: plot_interpolation(result, p)))


def build_schedule(name: str, arguments: Mapping[str, Any], *, out: Path | None = None,
                   steps: int | None = None, log_y: bool = False) -> Job[schedules.Schedule]:
    """A schedule from `schedules.CONSTRUCTORS` by name and keyword arguments; with `out`,
    its plot, drawn as the hyper-parameter it is meant for (LR or momentum)."""
    if name not in schedules.CONSTRUCTORS:
        raise ValueError(f"unknown schedule {name!r}; choose from "
                         f"{', '.join(sorted(schedules.CONSTRUCTORS))}")
    constructor, quantity = schedules.CONSTRUCTORS[name]
    schedule = constructor(**arguments)
    if out is None:
        return Job(schedule, ())
    if quantity == "momentum":
        path = plot_schedule(out, momentum=schedule, num_steps=steps, log_y=log_y)
    else:
        path = plot_schedule(out, lr=schedule, num_steps=steps, log_y=log_y)
    return Job(schedule, (path,))


@dataclasses.dataclass(frozen=True)
class Demo:
    """1cycle against a constant LR at the same peak, on digits."""

    one_cycle: History
    constant: History
    lr: schedules.Schedule
    momentum: schedules.Schedule


EvalCallback = Callable[[str, int, float, float | None], None]


def demo(*, out: Path, epochs: int = 10, max_lr: float = 0.3, seed: int = 0,
         progress: bool = False, on_eval: EvalCallback | None = None) -> Job[Demo]:
    """Train the digits CNN twice from the same weights and data order, with 1cycle and
    cyclical momentum, then at a constant LR and momentum 0.9; schedule.png shows the first.
    `on_eval(label, epoch, val_loss, val_accuracy)` sees each epoch's evaluation."""
    output_folder(out)
    task = load_task("digits")
    per_epoch = steps_per_epoch(task.datasets()[0], task.batch_size)
    one_cycle = TrialSpec("digits", max_lr=max_lr, budget=Budget(epochs=epochs), seed=seed,
                          eval_every=per_epoch, eval_samples=None, label="1cycle")
    constant = one_cycle.with_(policy="constant", momentum=(0.9, 0.9), cycle_momentum=False,
                               label=f"constant lr {max_lr:g}")
    histories = []
    for spec in (one_cycle, constant):
        def report(step: int, loss: float, metric: float | None, label: str = spec.label) -> None:
            if on_eval is not None:
                on_eval(label, step // per_epoch, loss, metric)

        trainer, steps = build_trainer(spec, task=task, progress=progress, on_eval=report)
        histories.append(trainer.run(steps=steps))
    lr, momentum = policy_schedules("one-cycle", one_cycle.budget.total_steps(per_epoch),
                                    max_lr)
    path = plot_schedule(out / "schedule.png", lr=lr, momentum=momentum,
                         title=f"1cycle, max_lr={max_lr}, {epochs} epochs on digits")
    return Job(Demo(histories[0], histories[1], lr, momentum), (path,))
