"""`--budget-minutes` as the user's clock sees it: the whole `disciplined tune` command,
from its start to its exit, against the budget it was given.

bench-decisions calls `tune` in a process that imported torch long before; a user runs the
command, and waits for its imports, its plan, the final training and the report. This runs
the command itself on zoo tasks, one after another, with the machine's default threads, and
times each process from outside. The budgets are multiples (`--multiples`, default 3) of the
final training's length stored in benchmarks/decisions/<task>.json (timed once, at 1 torch
thread): about 3 trainings, a budget a user would give. A budget the command refuses as too
small is given again as the minutes its error advised, as a user told so would; the tasks
whose training takes a second or two are also given a generous budget (`--generous`, 30x:
about a minute), where the recipe must find a use for its time.

    make bench-budget
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import header, publish

from disciplined import zoo

MARK = "budget-wall"
DECISIONS = Path(__file__).with_name("decisions")
GRIDS = Path(__file__).with_name("zoo_reference")
# the goal of issue 13: the wall time within this share of --budget-minutes
TOLERANCE = 0.10
# a task whose final training takes under this many seconds is also given a generous budget
CHEAP = 2.0


# the minimum the command advises when it refuses a budget (recipe.minutes_to_give)
ADVICE = re.compile(r"give at least ([0-9.]+) minutes")


@dataclasses.dataclass(frozen=True)
class Ran:
    """One command timed from outside."""

    wall: float
    own: float | None  # the summary's total; None where it did not finish
    advised: float | None  # where it refused the budget: the minutes it said to give
    final: dict[str, Any] | None = None  # the summary's final training


def command_wall(name: str, minutes: float, seed: int) -> Ran:
    """Run `disciplined tune zoo/<name> --budget-minutes <minutes>` and time it."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "disciplined", "tune", f"zoo/{name}", "--budget-minutes",
               f"{minutes:.4f}", "--seed", str(seed), "--quiet", "--out", out]
        began = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            advice = ADVICE.search(done.stderr)
            return Ran(wall, None, float(advice.group(1)) if advice else None)
        summary = json.loads((Path(out) / "summary.json").read_text())
        return Ran(wall, summary["wall_seconds_total"], None, summary["final"])


def against_grid(name: str, final: dict[str, Any] | None) -> str:
    """tune's final training (the model it delivered) beside the grid's best cell, by
    what the grid scores: accuracy, else the validation loss."""
    grid = json.loads((GRIDS / f"{name}.json").read_text())
    if final is None or (final.get("val_loss") is None and final.get("val_metric") is None):
        return "-"
    if grid["score"] == "val_accuracy":
        return (f"{final['val_metric']:.2%} ({grid['best']['val_metric']:.2%}, naive "
                f"{grid['naive']['val_metric']:.2%})")
    naive = grid["naive"]["val_loss"]
    naive_words = f"{naive:.4g}" if naive is not None and math.isfinite(naive) else "diverged"
    return f"{final['val_loss']:.4g} ({grid['best']['val_loss']:.4g}, naive {naive_words})"


def row(name: str, budget: str, seconds: float, ran: Ran) -> tuple[str, str]:
    """The table's row for one command, and what it counts as: yes, no, refused or failed."""
    ratio = ran.wall / seconds
    if ran.advised is not None:
        kept, told = "refused", f"(too small: {ran.advised:g} min advised)"
    elif ran.own is None:
        kept, told = "failed", "failed"
    else:
        kept = "yes" if abs(ratio - 1) <= TOLERANCE else "no"
        told = f"{ran.own:.1f} s"
    return (f"| {name} | {budget} | {seconds:.1f} s | {ran.wall:.1f} s | {told} | "
            f"{ratio:.2f}x | {kept} | {against_grid(name, ran.final)} |"), kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(zoo.names()),
                        help="comma-separated zoo tasks (default: all with a stored length)")
    parser.add_argument("--multiples", type=float, nargs="+", default=[3.0],
                        help="budgets as multiples of the stored final training's seconds")
    parser.add_argument("--generous", type=float, default=30.0,
                        help="also this multiple, on the tasks whose stored final training "
                             f"takes under {CHEAP:g} s (a minute or so: a budget a user "
                             "gives without thinking; 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows, ratios, counts = [], [], {"refused": 0, "failed": 0, "advised": 0}
    names = [n for n in filter(None, args.tasks.split(",")) if (DECISIONS / f"{n}.json").exists()]
    stored = {n: json.loads((DECISIONS / f"{n}.json").read_text())["final_training_seconds"]
              for n in names}
    runs = [(m, n) for m in args.multiples for n in names]
    runs += [(args.generous, n) for n in names if args.generous and stored[n] < CHEAP]
    for multiple, name in runs:
        seconds = multiple * stored[name]
        tries = [(f"{multiple:g}x", seconds, command_wall(name, seconds / 60, args.seed))]
        if (advised := tries[0][2].advised) is not None:  # given again as advised
            counts["advised"] += 1
            tries.append(("advised", 60 * advised, command_wall(name, advised, args.seed)))
        for budget, given, ran in tries:
            line, kept = row(name, budget, given, ran)
            if kept in ("refused", "failed"):
                counts[kept] += 1
            else:
                ratios.append(ran.wall / given)
            rows.append(line)
            print(line, flush=True)
    inside = sum(abs(r - 1) <= TOLERANCE for r in ratios)
    lines = [
        *header("`--budget-minutes` on the user's clock: the command from start to exit",
                "make bench-budget"),
        f"- seed {args.seed}; each `disciplined tune zoo/<task> --budget-minutes M` run as "
        "its own process and timed from outside (its imports, the report and the exit "
        "included); 'budget' is M as a multiple of the final training's seconds stored in "
        "benchmarks/decisions/<task>.json, 'budget (s)' M itself; 'tune's total' is the "
        "summary's "
        "`wall_seconds_total` (to the end of the last stage, before the report); 'tune's "
        "final' the model it delivered (summary.json's final: accuracy, else the validation "
        "loss), one seed, beside the zoo's grid (benchmarks/zoo_reference/, the mean of 2 "
        "seeds at the task's length).",
        "- a budget the command refused as too small for loading, the range test and one "
        "short final was given again as the minutes its error advised (budget 'advised'); "
        + (f"the tasks whose final training takes under {CHEAP:g} s were also given "
           f"{args.generous:g}x, a generous budget." if args.generous else ""),
        f"- within +-{TOLERANCE:.0%}: {inside} of the {len(ratios)} that ran; "
        f"{counts['failed']} failed; {counts['refused']} refused ({counts['advised']} of the "
        "zoo's budgets, then given what the error advised); of those that ran, wall / budget min "
        f"{min(ratios, default=0):.2f}x, median {statistics.median(ratios or [0]):.2f}x, "
        f"max {max(ratios, default=0):.2f}x.",
        "",
        "| task | budget | budget (s) | the command's wall | tune's total | wall / budget | "
        "within +-10% | tune's final (the grid's best, the naive default) |",
        "|---|---|---:|---:|---:|---:|---|---|",
        *rows,
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
