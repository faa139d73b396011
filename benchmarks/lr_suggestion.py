"""How good is each range-test rule's max LR? Regret against a grid of 1cycle trainings.

For each task: train 1cycle (same budget, same seeds) at a log-spaced grid of max LRs to find
the best final validation accuracy; run the LR range test as `disciplined find-lr` does
(defaults: 1e-7 -> 10 over 100 steps, momentum 0.95 -> 0.85, wd 5e-4); train 1cycle at each
rule's suggestion; regret = best grid accuracy - accuracy at the suggestion (points, mean over
seeds). Smith's rule (ours) is read from the training loss (find-lr's default) and from the
validation loss (`--val`); the peers' rules from the training loss, as they use it.

    make bench-lr-suggestion
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from _common import final_metric, header, publish

from disciplined.range_test import task_range_test
from disciplined.tasks import load_task

MARK = "lr-suggestion"
# 1cycle budget per task, in epochs (fashion-mnist: one epoch of 469 steps, super-convergence).
EPOCHS = {"digits": 10, "mnist1d": 30, "mnist1d-mlp": 30, "fashion-mnist": 1}
GRID = np.logspace(-2.5, 0.5, 10)  # 10 max LRs over 3 decades
SEEDS = (0, 1)
RULES = (("smith", "train"), ("smith", "val"), ("steepest", "train"), ("min/10", "train"),
         ("valley", "train"))
CHANCE = 0.1  # accuracy when a suggestion is missing or training blows up


def accuracy(task_name: str, max_lr: float, seed: int) -> float:
    metric = final_metric(task_name, max_lr, EPOCHS[task_name], seed)
    return CHANCE if metric is None or not np.isfinite(metric) else float(metric)


def suggestions(task_name: str, seed: int) -> dict[tuple[str, str], float | None]:
    task = load_task(task_name)
    out: dict[tuple[str, str], float | None] = {}
    for source in ("train", "val"):
        result = task_range_test(task, weight_decay=5e-4, momentum=(0.95, 0.85), seed=seed,
                                 val=source == "val")
        for rule, sugg in result.suggestions.items():
            out[(rule, source)] = sugg.value
    return out


def run_task(task_name: str) -> tuple[list[str], dict[str, float]]:
    grid = {lr: statistics.mean(accuracy(task_name, lr, s) for s in SEEDS) for lr in GRID}
    best_lr = max(grid, key=lambda lr: grid[lr])
    best = grid[best_lr]
    per_seed = [suggestions(task_name, s) for s in SEEDS]
    regrets, cells = {}, []
    for rule in RULES:
        accs, lrs = [], []
        for seed, sugg in zip(SEEDS, per_seed, strict=True):
            lr = sugg.get(rule)
            lrs.append(lr)
            accs.append(CHANCE if lr is None else accuracy(task_name, lr, seed))
        regret = 100 * (best - statistics.mean(accs))
        regrets[f"{rule[0]} ({rule[1]})"] = regret
        shown = "/".join("-" if lr is None else f"{lr:.3g}" for lr in lrs)
        cells.append(f"{shown}: {100 * statistics.mean(accs):.2f}% ({regret:+.2f})")
    grid_text = ", ".join(f"{lr:.3g}: {100 * acc:.1f}" for lr, acc in grid.items())
    row = (f"| {task_name} | {EPOCHS[task_name]} | {best_lr:.3g}: {100 * best:.2f}% | "
           + " | ".join(cells) + " |")
    return [row, f"<!-- grid {task_name}: {grid_text} -->"], regrets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(EPOCHS))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    rows, all_regrets = [], []
    for task in args.tasks:
        task_rows, regrets = run_task(task)
        rows += task_rows
        all_regrets.append(regrets)
        print(task_rows[0], flush=True)
    names = [f"{r} ({s})" for r, s in RULES]
    mean = {n: statistics.mean(r[n] for r in all_regrets) for n in names}
    lines = [
        *header("Which max LR? Regret of each range-test rule against a 1cycle grid",
                "make bench-lr-suggestion"),
        f"- method: 1cycle (SGD or the task's optimizer, momentum 0.95->0.85, wd 5e-4) at "
        f"{len(GRID)} max LRs {GRID[0]:.3g}..{GRID[-1]:.3g} (log-spaced) x seeds {SEEDS}; "
        "range test as `find-lr` runs it (1e-7 -> 10, 100 steps), once per seed; each cell: "
        "suggested LR per seed, final val accuracy at it (mean over seeds), (regret in "
        f"points). Run time {time.perf_counter() - start:.0f} s.",
        "",
        "| task | epochs | best grid LR: acc | " + " | ".join(names) + " |",
        "|---|---:|---|" + "---|" * len(names),
        *rows,
        "| **mean regret (points)** | | | " + " | ".join(f"**{mean[n]:.2f}**" for n in names)
        + " |",
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
