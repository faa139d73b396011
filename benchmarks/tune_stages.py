"""`disciplined tune` with its defaults: time per stage, tuning time over the final training's
time, and the final accuracy against each task's reference, over several seeds.

    make bench-tune
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import end_of, header, publish

from disciplined.recipe import tune

MARK = "tune-stages"
# Published references: MNIST-1D paper (CNN 94%, MLP 68%; human expert 96%).
REFERENCE = {"digits": None, "mnist1d": 0.94, "mnist1d-mlp": 0.68, "fashion-mnist": None}
GOAL = {"mnist1d": 0.96, "mnist1d-mlp": 0.72}
SEEDS = {"digits": (0, 1, 2), "mnist1d": (0, 1, 2), "mnist1d-mlp": (0, 1, 2),
         "fashion-mnist": (0,)}


def run_task(task: str) -> list[str]:
    accuracies, ratios, stage_seconds, totals = [], [], {}, []
    for seed in SEEDS[task]:
        with tempfile.TemporaryDirectory() as tmp:
            s = tune(task, out=Path(tmp) / "study", seed=seed).summary
        final = s["final"]["wall_seconds"]
        tuning = s["wall_seconds_total"] - final
        accuracies.append(end_of(s["final"])[1])
        ratios.append(tuning / final)
        totals.append(s["wall_seconds_total"])
        for st in s["stages"]:
            stage_seconds.setdefault(st["name"], []).append(st["wall_seconds"])
        print(task, seed, f"{accuracies[-1]:.4f}", f"{tuning / final:.2f}",
              s["hyperparameters"], flush=True)
    mean = statistics.mean(accuracies)
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    ref = REFERENCE[task]
    goal = GOAL.get(task)
    stages = ", ".join(f"{k} {statistics.mean(v):.1f}" for k, v in stage_seconds.items())
    ref_text = "-" if ref is None else f"{100 * ref:.0f}%"
    goal_text = "-" if goal is None else \
        f"{'met' if mean >= goal else 'missed'} ({100 * goal:.0f}%)"
    return [f"| {task} | {len(accuracies)} | {100 * mean:.2f}% ± {100 * spread:.2f} | "
            f"{ref_text} | {goal_text} | {statistics.mean(totals):.0f} s | "
            f"{statistics.mean(ratios):.2f} | {stages} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(REFERENCE))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows = [row for task in args.tasks for row in run_task(task)]
    lines = [
        *header("`disciplined tune` with its defaults: stages, cost, accuracy",
                "make bench-tune"),
        "- method: `tune(task, seed=s)` with default stages (range test, momentum, weight "
        "decay, confirming range test, final 1cycle) and default budgets (final epochs: "
        "digits 10, mnist1d 30, fashion-mnist 4); accuracy is the final validation (test "
        "split) accuracy, mean ± standard deviation over seeds; ratio = tuning time / final "
        "training time.",
        "",
        "| task | seeds | final accuracy | published reference | goal | total time | "
        "tuning / final | mean seconds per stage |",
        "|---|---:|---|---|---|---:|---:|---|",
        *rows,
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
