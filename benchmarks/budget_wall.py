"""`--budget-minutes` as the user's clock sees it: the whole `disciplined tune` command,
from its start to its exit, against the budget it was given.

bench-decisions calls `tune` in a process that imported torch long before; a user runs the
command, and waits for its imports, its plan, the final training and the report. This runs
the command itself on zoo tasks, one after another, with the machine's default threads, and
times each process from outside. The budgets are multiples (`--multiples`, default 3) of the
final training's length stored in benchmarks/decisions/<task>.json (timed once, at 1 torch
thread): about 3 trainings, a budget a user would give. A budget the command refuses as too
small is given again as the minutes its error advised, as a user told so would.

    make bench-budget
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import header, publish

from disciplined import zoo

MARK = "budget-wall"
DECISIONS = Path(__file__).with_name("decisions")
# the goal of issue 13: the wall time within this share of --budget-minutes
TOLERANCE = 0.10


# the minimum the command advises when it refuses a budget (recipe.minutes_to_give)
ADVICE = re.compile(r"give at least ([0-9.]+) minutes")


@dataclasses.dataclass(frozen=True)
class Ran:
    """One command timed from outside."""

    wall: float
    own: float | None  # the summary's total; None where it did not finish
    advised: float | None  # where it refused the budget: the minutes it said to give


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
        return Ran(wall, summary["wall_seconds_total"], None)


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
            f"{ratio:.2f}x | {kept} |"), kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(zoo.names()),
                        help="comma-separated zoo tasks (default: all with a stored length)")
    parser.add_argument("--multiples", type=float, nargs="+", default=[3.0],
                        help="budgets as multiples of the stored final training's seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows, ratios, counts = [], [], {"refused": 0, "failed": 0, "advised": 0}
    for multiple in args.multiples:
        for name in filter(None, args.tasks.split(",")):
            stored = DECISIONS / f"{name}.json"
            if not stored.exists():
                print(f"{name}: no {stored}, skipped", flush=True)
                continue
            seconds = multiple * json.loads(stored.read_text())["final_training_seconds"]
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
        "`wall_seconds_total` (to the end of the last stage, before the report).",
        "- a budget the command refused as too small for loading, the range test and one "
        "short final was given again as the minutes its error advised (budget 'advised').",
        f"- within +-{TOLERANCE:.0%}: {inside} of the {len(ratios)} that ran; "
        f"{counts['failed']} failed; {counts['refused']} refused ({counts['advised']} of the "
        "zoo's budgets, then given what the error advised); of those that ran, wall / budget min "
        f"{min(ratios, default=0):.2f}x, median {statistics.median(ratios or [0]):.2f}x, "
        f"max {max(ratios, default=0):.2f}x.",
        "",
        "| task | budget | budget (s) | the command's wall | tune's total | wall / budget | "
        "within +-10% |",
        "|---|---|---:|---:|---:|---:|---|",
        *rows,
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
