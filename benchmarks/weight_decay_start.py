"""Which weight decay should tune start from? Read from the zoo's grids and tune's own picks.

tune decides the max LR first, with every short run at the optimizer's start weight decay
(defaults.START_WEIGHT_DECAY), and at tight budgets (3x one final training) no weight-decay
stage is affordable: the final trains at the start value. The LR it picks there is a short
run's winner, and short runs favour a higher LR than the full length rewards. So the start
that serves best is the one whose column of the grid scores best at the LRs tune really
picks, not at the grid's best LR.

For each zoo task with a reference grid (benchmarks/zoo_reference/) and each draw of tune at
3x stored for a library (benchmarks/decisions/, `--library`, every seed), the max LR that
draw chose is looked up in each weight-decay column of the grid (the grid's LR nearest it on
a log scale; the mean over the grid's seeds; a diverged cell counts as the grid's worst)
and scored as bench-decisions scores: accuracy points below the grid's best for
classifiers, the ratio to the grid's best loss for the others. The column's own best (its
best LR) is given beside it. Nothing is trained: the grids and the draws are read.

Caveats: the LR a draw picks was picked at the old start; at another start the short runs
may pick another. The real test is bench-decisions at the new start. Rules are designed on
the dev half (the default); the test half is measured only to report them.

    python benchmarks/weight_decay_start.py --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import header, publish

from disciplined import zoo
from disciplined.defaults import START_WEIGHT_DECAY

HERE = Path(__file__).parent
REFERENCE = HERE / "zoo_reference"
DECISIONS = HERE / "decisions"
MARK = "weight-decay-start"
# where tune started before 2026-12-03's seventh session: the default --library's draws
# picked their LRs at these
OLD_STARTS = {"sgd": 5e-4, "adamw": 1e-2}


def cells(grid: dict[str, Any]) -> dict[tuple[float, float], float | None]:
    """Each (max LR, weight decay) cell's mean score over the grid's seeds, higher better
    (accuracy, or minus the loss); None where a seed diverged."""
    accuracy = grid["score"] == "val_accuracy"
    runs: dict[tuple[float, float], list[float | None]] = defaultdict(list)
    for run in grid["runs"]:
        if run.get("policy", "one-cycle") != "one-cycle":
            continue
        value = None if run["diverged"] or run["val_loss"] is None else (
            run["val_metric"] if accuracy else -run["val_loss"])
        runs[(run["max_lr"], run["weight_decay"])].append(value)
    return {k: None if None in vs else statistics.mean(v for v in vs if v is not None)
            for k, vs in runs.items()}


def regret(score: float, best: float, accuracy: bool) -> float:
    """Accuracy points below the best, or the loss's ratio to the best loss."""
    return 100 * (best - score) if accuracy else score / best


def task_rows(name: str, library: str) -> dict[str, Any] | None:
    grid_path = REFERENCE / f"{name}.json"
    draws_path = DECISIONS / f"{name}.json"
    if not grid_path.exists() or not draws_path.exists():
        return None
    grid = json.loads(grid_path.read_text())
    accuracy = grid["score"] == "val_accuracy"
    means = cells(grid)
    scores = [v for v in means.values() if v is not None]
    best, worst = max(scores), min(scores)
    lrs = sorted({lr for lr, _wd in means})
    decays = sorted({wd for _lr, wd in means})

    def score(lr: float, wd: float) -> float:
        value = means.get((lr, wd))
        return regret(worst if value is None else value, best, accuracy)

    picks = [entry["choice"]["max_lr"] for key, entry in
             json.loads(draws_path.read_text())["tune_seeds"].items()
             if key.startswith("3x ") and key.endswith(f" {library}")]
    at_picks = {}
    for wd in decays:
        nearest = [min(lrs, key=lambda g: abs(math.log10(g / lr))) for lr in picks]
        at_picks[wd] = [score(g, wd) for g in nearest]
    return {"task": name, "split": grid["split"], "optimizer": grid["optimizer"],
            "accuracy": accuracy, "picks": picks, "decays": decays,
            "column_best": {wd: min(score(lr, wd) for lr in lrs) for wd in decays},
            "at_picks": at_picks}


def pooled(values: list[float], accuracy: bool) -> float:
    """Mean points for classifiers, geometric mean ratio for the others."""
    if accuracy:
        return statistics.mean(values)
    return math.exp(statistics.mean(math.log(v) for v in values))


def fmt(value: float, accuracy: bool) -> str:
    return f"{value:.2f} pt" if accuracy else f"{value:.3f}x"


def half_lines(rows: list[dict[str, Any]], split: str) -> list[str]:
    lines = [f"### {split} half", ""]
    if not rows:
        return [*lines, "No task of this half has both a grid and stored draws.", ""]
    lines += ["| task | optimizer | tune's 3x picks (max LR) | weight decay: at the picks "
              "(the column's own best) |", "|---|---|---|---|"]
    for r in rows:
        old = OLD_STARTS[r["optimizer"]]
        cols = []
        for wd in r["decays"]:
            mark = " (start)" if wd == START_WEIGHT_DECAY[r["optimizer"]] else ""
            at = fmt(pooled(r["at_picks"][wd], r["accuracy"]), r["accuracy"])
            cols.append(f"{wd:g}{mark}: {at} ({fmt(r['column_best'][wd], r['accuracy'])})")
        picks = ", ".join(f"{p:.3g}" for p in r["picks"])
        lines.append(f"| {r['task']} | {r['optimizer']} (old start {old:g}) | {picks} | "
                     + "; ".join(cols) + " |")
    lines += ["", "Pooled over the half's draws, by optimizer and kind (mean points for "
              "classifiers, geometric mean loss ratio for the others), at each weight decay "
              "that every task of the group has in its grid:", "",
              "| optimizer | kind | draws | " + "weight decay: pooled regret at the picks |",
              "|---|---|---|---|"]
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["optimizer"], r["accuracy"])].append(r)
    for (optimizer, accuracy), members in sorted(groups.items()):
        shared = sorted(set.intersection(*(set(m["decays"]) for m in members)))
        values = {wd: [v for m in members for v in m["at_picks"][wd]] for wd in shared}
        lines.append(f"| {optimizer} | {'classifiers' if accuracy else 'loss'} | "
                     f"{len(values[shared[0]])} | " + "; ".join(
                         f"{wd:g}: {fmt(pooled(v, accuracy), accuracy)}"
                         for wd, v in values.items()) + " |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="fa548a1",
                        help="the library whose stored 3x draws give tune's picks")
    parser.add_argument("--write", type=Path, help="put the section into this RESULTS.md")
    args = parser.parse_args()
    lines = header("Which weight decay to start from: the grids at tune's own picks "
                   "(weight-decay-start)", "make weight-decay-start")
    lines += ["", f"tune's picks are its 3x draws at library {args.library} (the old starts: "
              "5e-4 for SGD, 1e-2 for AdamW), every seed stored. Each cell: the regret of the "
              "grid's LR nearest each pick at that weight decay, pooled over the picks, and in "
              "brackets the column's own best. (start) marks the start now. Nothing is "
              "trained; see the script's docstring for the caveats.", ""]
    for split in ("dev", "test"):
        rows = [r for t in zoo.ZOO if t.split == split
                if (r := task_rows(t.name, args.library)) is not None and r["picks"]]
        lines += half_lines(rows, split)
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
