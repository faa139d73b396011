"""What the zoo's benchmarks share: one full-length training of a zoo task, and its score."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from _common import cpu_model

from disciplined import __version__, zoo
from disciplined.defaults import MOMENTUM
from disciplined.tasks import Task
from disciplined.trials import Budget, TrialSpec, train


@dataclasses.dataclass
class Run:
    """One full-length training at the end of its schedule (not its best checkpoint)."""

    max_lr: float
    weight_decay: float
    seed: int
    val_loss: float | None  # None: not finite (diverged)
    val_metric: float | None
    best_val_loss: float | None  # the lowest of the run's evaluations
    diverged: bool
    seconds: float
    policy: str = "one-cycle"
    momentum: tuple[float, float] = MOMENTUM
    batch_size: int | None = None


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def score_of(val_loss: float | None, val_metric: float | None, classification: bool) -> float:
    """Higher is better: accuracy for classifiers, minus the loss otherwise; a diverged
    (non-finite) run scores worst."""
    if val_loss is None:
        return -math.inf
    if classification:
        return val_metric if val_metric is not None else -math.inf
    return -val_loss


def run_score(run: Run, classification: bool) -> float:
    return score_of(None if run.diverged else run.val_loss, run.val_metric, classification)


def train_once(task: Task, name: str, max_lr: float, weight_decay: float, seed: int, *,
               policy: str = "one-cycle", momentum: tuple[float, float] = MOMENTUM,
               batch_size: int | None = None) -> Run:
    """Train zoo task `name` for its final length (`task.epochs`) and score it on the whole
    validation set."""
    spec = TrialSpec(f"zoo/{name}", max_lr=max_lr, budget=Budget(epochs=task.epochs),
                     policy=policy, momentum=momentum, cycle_momentum=policy != "constant",
                     weight_decay=weight_decay, seed=seed, eval_samples=None,
                     batch_size=batch_size,
                     label=f"{name} lr={max_lr:.3g} wd={weight_decay:g} seed={seed}")
    start = time.perf_counter()
    result, _ = train(spec, task=task)
    seconds = time.perf_counter() - start
    history = result.history
    assert history is not None
    losses = [v for v in history.val_loss if math.isfinite(v)]
    diverged = history.stop_reason == "diverged" or finite(result.val_loss) is None
    return Run(max_lr, weight_decay, seed, finite(result.val_loss),
               None if diverged else result.val_metric, min(losses) if losses else None,
               diverged, round(seconds, 2), policy, momentum, batch_size)


def stamp(command: str) -> dict[str, str]:
    """Where and how a task's file was measured: date, machine, versions, the command."""
    return {"date": datetime.date.today().isoformat(),
            "machine": f"{os.cpu_count()} cores, {cpu_model()}, torch threads "
                       f"{torch.get_num_threads()}",
            "versions": f"Python {platform.python_version()}, torch {torch.__version__}, "
                        f"disciplined {__version__}",
            "command": command}


def task_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both zoo benchmarks take: which tasks, recompute or keep, threads."""
    parser.add_argument("--tasks", default=",".join(zoo.names()),
                        help="comma-separated zoo task names (default: all)")
    parser.add_argument("--force", action="store_true",
                        help="recompute tasks that already have a file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the other cores stay free)")


def each_task(args: argparse.Namespace, folder: Path,
              compute: Callable[[str], dict[str, Any]]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Compute and write `folder/NAME.json` for each task of `--tasks` that has no file yet
    (every one with `--force`), yielding each file as it is written."""
    torch.set_num_threads(args.threads)
    folder.mkdir(exist_ok=True)
    for name in filter(None, args.tasks.split(",")):
        path = folder / f"{name}.json"
        if path.exists() and not args.force:
            print(f"{name}: kept {path} (--force recomputes it)")
            continue
        data = compute(name)
        path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
        yield path, data


def measure_half(description: str, folder: Path,
                 compute: Callable[[str], dict[str, Any]]) -> argparse.Namespace:
    """The command line of a benchmark measured per zoo task against its reference grid:
    computes `folder/NAME.json` for the tasks asked for (without --tasks, the tasks of
    --split that have a grid) and returns the arguments (--write among them)."""
    parser = argparse.ArgumentParser(description=description)
    task_arguments(parser)
    parser.add_argument("--split", choices=("dev", "test"), default="dev",
                        help="the zoo half to measure when --tasks is not given")
    parser.add_argument("--write", type=Path, help="put the section into this RESULTS.md")
    args = parser.parse_args()
    reference = Path(__file__).with_name("zoo_reference")
    if args.tasks == ",".join(zoo.names()):
        args.tasks = ",".join(t.name for t in zoo.ZOO if t.split == args.split
                              and (reference / f"{t.name}.json").exists())
    for _path, data in each_task(args, folder, compute):
        print(f"{data['task']}: done in {data['wall_seconds']} s", flush=True)
    return args
