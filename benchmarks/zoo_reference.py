"""The zoo's reference grids: what a patient user with a grid would find on each zoo task.

For each task: 1cycle with Smith's defaults (three phases, linear, div 10, momentum
0.95 -> 0.85) at the task's final length, over max LR (a log grid in half-decade steps) x
weight decay (4 values including 0), on 2 seeds; plus the naive default a user starts from
(constant LR, SGD 0.01 / AdamW 3e-4, momentum / beta1 0.9, no weight decay).

Where the grid lies: a one-seed scan at whole decades (weight decay 0) finds the region, the
grid spans one decade either side of the scan's best, and a grid whose best (the mean over
seeds) sits on an edge, of max LR or of weight decay, is widened on that side and rerun
there until it does not (at most MAX_WIDENINGS times; the file says when that was not
enough). Nothing here is tuned to a task: every task gets the same procedure.

One JSON file per task in benchmarks/zoo_reference/, with the date, machine, versions, wall
time and the command; `--commit` commits each task's file as it finishes, so a run stopped
midway keeps what it computed. Long (an hour or more for the whole zoo): run it with nohup.

    make zoo-reference                       # every task without a file yet
    python benchmarks/zoo_reference.py --tasks tabular_mlp --force
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import header, publish
from _zoo import Run, each_task, run_score, stamp, task_arguments, train_once

from disciplined import zoo
from disciplined.tasks import Task, load_task

MARK = "zoo-reference"
OUT = Path(__file__).with_name("zoo_reference")
SEEDS = (0, 1)
# The whole-decade scan that places the grid (weight decay 0, seed 0), widened while its best
# is on an edge.
SCAN = [10.0 ** k for k in range(-6, 1)]
# Weight decays per optimizer: SGD's is coupled (added to the gradient), AdamW's decoupled
# (multiplied by the LR), so AdamW's useful values are ~100x larger.
WEIGHT_DECAYS = {"sgd": [0.0, 1e-4, 1e-3, 1e-2], "adamw": [0.0, 1e-2, 1e-1, 1.0]}
NAIVE_LR = {"sgd": 1e-2, "adamw": 3e-4}
NAIVE_MOMENTUM = 0.9
HALF_DECADE = math.sqrt(10.0)
MAX_WIDENINGS = 4


class Grid:
    """The runs of one task, trained on demand and kept."""

    def __init__(self, task: Task, name: str, classification: bool) -> None:
        self.task, self.name, self.classification = task, name, classification
        self.runs: dict[tuple[float, float, int], Run] = {}

    def run(self, max_lr: float, weight_decay: float, seed: int) -> Run:
        key = (float(f"{max_lr:.6g}"), weight_decay, seed)
        if key not in self.runs:
            run = train_once(self.task, self.name, key[0], weight_decay, seed)
            self.runs[key] = run
            shown = run.val_metric if self.classification else run.val_loss
            print(f"  {run.max_lr:9.3g} wd {weight_decay:<7g} seed {seed}: {shown} "
                  f"({run.seconds:.1f} s{', diverged' if run.diverged else ''})", flush=True)
        return self.runs[key]

    def rank(self, max_lr: float, weight_decay: float,
             seeds: tuple[int, ...]) -> tuple[float, float]:
        """(mean score, minus the mean validation loss): accuracies tie often (several
        cells at 100%), and then the lower loss is the better cell."""
        runs = [self.run(max_lr, weight_decay, s) for s in seeds]
        scores = [run_score(r, self.classification) for r in runs]
        if any(math.isinf(s) for s in scores):
            return -math.inf, -math.inf
        return statistics.fmean(scores), -statistics.fmean(r.val_loss or 0.0 for r in runs)


def best_of(grid: Grid, lrs: list[float], wds: list[float],
            seeds: tuple[int, ...]) -> tuple[float, float, float]:
    """(max_lr, weight_decay, mean score) of the best cell: the highest mean score, then the
    lowest mean loss, then the lower LR."""
    cells = [(grid.rank(lr, wd, seeds), -lr, lr, wd) for lr in lrs for wd in wds]
    (score, _), _, lr, wd = max(cells)
    return lr, wd, score


def reference(name: str) -> dict[str, Any]:
    entry = next(t for t in zoo.ZOO if t.name == name)
    task = load_task(f"zoo/{name}")
    classification = task.metric == "accuracy"
    grid = Grid(task, name, classification)
    started = time.perf_counter()
    notes: list[str] = []

    print(f"{name}: decade scan", flush=True)
    scan = list(SCAN)
    for _ in range(MAX_WIDENINGS):
        lr, _, _ = best_of(grid, scan, [0.0], (0,))
        if lr == scan[0]:
            scan.insert(0, scan[0] / 10)
        elif lr == scan[-1]:
            scan.append(scan[-1] * 10)
        else:
            break
        notes.append(f"decade scan widened to {scan[0]:g}..{scan[-1]:g}")
    centre, _, _ = best_of(grid, scan, [0.0], (0,))

    lrs = [centre * HALF_DECADE ** k for k in range(-2, 3)]
    wds = list(WEIGHT_DECAYS[task.optimizer])
    print(f"{name}: grid around {centre:g}", flush=True)
    for _ in range(MAX_WIDENINGS):
        lr, wd, _ = best_of(grid, lrs, wds, SEEDS)
        if lr == lrs[0]:
            lrs.insert(0, lrs[0] / HALF_DECADE)
            notes.append(f"best max LR {lr:.3g} on the low edge: added {lrs[0]:.3g}")
        elif lr == lrs[-1]:
            lrs.append(lrs[-1] * HALF_DECADE)
            notes.append(f"best max LR {lr:.3g} on the high edge: added {lrs[-1]:.3g}")
        elif wd == wds[-1]:
            wds.append(wds[-1] * 10)
            notes.append(f"best weight decay {wd:g} on the high edge: added {wds[-1]:g}")
        else:
            break
    lr, wd, score = best_of(grid, lrs, wds, SEEDS)
    on_edge = lr in (lrs[0], lrs[-1]) or wd == wds[-1]
    if on_edge:
        notes.append(f"the best is still on an edge after {MAX_WIDENINGS} widenings")

    naive_lr = NAIVE_LR[task.optimizer]
    print(f"{name}: naive default (constant {naive_lr:g})", flush=True)
    naive = [train_once(task, name, naive_lr, 0.0, seed, policy="constant",
                        momentum=(NAIVE_MOMENTUM, NAIVE_MOMENTUM)) for seed in SEEDS]
    naive_scores = [run_score(r, classification) for r in naive]

    grid_runs = [r for (lr_, wd_, _), r in sorted(grid.runs.items())
                 if any(math.isclose(lr_, x, rel_tol=1e-5) for x in lrs) and wd_ in wds]
    best_runs = [grid.run(lr, wd, s) for s in SEEDS]
    return {
        "task": name,
        "kind": entry.kind,
        "split": entry.split,
        "optimizer": task.optimizer,
        "epochs": task.epochs,
        "batch_size": task.batch_size,
        "score": "val_accuracy" if classification else "val_loss",
        "policy": "one-cycle (three phases, linear, div 10, momentum 0.95 -> 0.85)",
        "seeds": list(SEEDS),
        "max_lrs": [float(f"{x:.6g}") for x in lrs],
        "weight_decays": wds,
        "best": {
            "max_lr": float(f"{lr:.6g}"), "weight_decay": wd,
            "val_metric": statistics.fmean(r.val_metric for r in best_runs
                                           if r.val_metric is not None)
            if classification else None,
            "val_loss": statistics.fmean(r.val_loss for r in best_runs
                                         if r.val_loss is not None),
            "mean_score": score,
        },
        "best_on_edge": on_edge,
        "naive": {"policy": "constant", "lr": naive_lr, "momentum": NAIVE_MOMENTUM,
                  "weight_decay": 0.0,
                  # None where a seed diverged (JSON has no infinity)
                  "val_metric": mean_or_none([r.val_metric for r in naive])
                  if classification else None,
                  "val_loss": mean_or_none([r.val_loss for r in naive]),
                  "mean_score": mean_or_none(naive_scores),
                  "runs": [dataclasses.asdict(r) for r in naive]},
        "train_seconds_median": statistics.median(r.seconds for r in grid_runs),
        "notes": notes,
        "runs": [dataclasses.asdict(r) for r in grid_runs],
        "scan": [dataclasses.asdict(r) for (lr_, wd_, s), r in sorted(grid.runs.items())
                 if wd_ == 0.0 and s == 0
                 and any(math.isclose(lr_, x, rel_tol=1e-5) for x in scan)],
        "wall_seconds": round(time.perf_counter() - started, 1),
        **stamp(f"python benchmarks/zoo_reference.py --tasks {name} --force"),
    }


def mean_or_none(values: list[float | None] | list[float]) -> float | None:
    """The mean, or None when any value is missing or not finite (a diverged run)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(finite) if len(finite) == len(values) else None


def shown(score: float | None, classification: bool) -> str:
    """A mean score for people: accuracy in percent, else the loss; None: diverged."""
    if score is None or not math.isfinite(score):
        return "diverged"
    return f"{100 * score:.2f}%" if classification else f"{-score:.4g}"


def summary(split: str) -> list[str]:
    """One row per task of a half with a grid file: its best, the naive default, what weight
    decay is worth there, and the grid's cost."""
    rows = []
    for entry in (t for t in zoo.ZOO if t.split == split):
        path = OUT / f"{entry.name}.json"
        if not path.exists():
            rows.append(f"| {entry.name} | not computed yet | | | | | |")
            continue
        data = json.loads(path.read_text())
        classification = data["score"] == "val_accuracy"
        runs = [Run(**r) for r in data["runs"]]

        best = data["best"]
        at_zero = max(statistics.fmean(run_score(r, classification) for r in runs
                                       if r.max_lr == x.max_lr and r.weight_decay == 0.0)
                      for x in runs if x.weight_decay == 0.0)
        worth = (f"{100 * (best['mean_score'] - at_zero):+.2f} pt" if classification
                 else f"{at_zero / best['mean_score']:.3f}x loss without")
        edge = " (on an edge)" if data["best_on_edge"] else ""
        rows.append(
            f"| {entry.name} | {data['optimizer']} | {best['max_lr']:.3g} / "
            f"{best['weight_decay']:g}{edge} | {shown(best['mean_score'], classification)} | "
            f"{shown(data['naive']['mean_score'], classification)} | {worth} | "
            f"{len(data['runs'])} runs, {data['wall_seconds'] / 60:.1f} min |")
    return ["| task | optimizer | best max LR / wd | best (mean of 2 seeds) | naive default | "
            "weight decay's worth | grid |", "|---|---|---|---|---|---|---|", *rows]


def commit(path: Path, message: str) -> None:
    """Commit one file, retrying while another git command holds the index."""
    for _ in range(30):
        add = subprocess.run(["git", "add", str(path)], capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", message, "--", str(path)],
            capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(10)
    print(f"could not commit {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    task_arguments(parser)
    parser.add_argument("--commit", action="store_true",
                        help="git-commit each task's file as it finishes")
    parser.add_argument("--write", type=Path,
                        help="put the summary of every grid file into this RESULTS.md")
    args = parser.parse_args()
    for path, data in each_task(args, OUT, reference):
        name = data["task"]
        best = data["best"]
        naive = shown(data["naive"]["mean_score"], data["score"] == "val_accuracy")
        line = (f"{name}: best max_lr {best['max_lr']:.3g} wd {best['weight_decay']:g} "
                f"score {best['mean_score']:.4g}, naive {naive}, {data['wall_seconds']:.0f} s")
        print(line, flush=True)
        if args.commit:
            commit(path, f"zoo reference grid: {line}")
    lines = header("The zoo's reference grids (zoo-reference)", "make zoo-reference")
    lines += ["", "1cycle (Smith's defaults) at each task's final length over max LR x weight "
              "decay, 2 seeds, widened while the best is on an edge (docs/zoo.md); accuracy for "
              "classifiers, the validation loss otherwise, at the end of training. Weight "
              "decay's worth: the best cell against the best at weight decay 0. Each file in "
              "benchmarks/zoo_reference/ has its date, machine, versions, wall time and command."]
    for split in ("dev", "test"):
        lines += ["", f"### {split} half", "", *summary(split)]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
