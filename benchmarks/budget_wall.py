"""`--budget-minutes` as the user's clock sees it: the whole `disciplined tune` command,
from its start to its exit, against the budget it was given.

bench-decisions calls `tune` in a process that imported torch long before; a user runs the
command, and waits for its imports, its plan, the final training and the report. This runs
the command itself on zoo tasks, one after another, with the machine's default threads, and
times each process from outside. The budgets are multiples (`--multiples`, default 3) of the
final training's length stored in benchmarks/decisions/<task>.json (timed once, at 1 torch
thread): about 3 trainings, a budget a user would give.

    make bench-budget
"""

from __future__ import annotations

import argparse
import json
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


def command_wall(name: str, minutes: float, seed: int) -> tuple[float, float | None, bool]:
    """The command's wall time from outside, its own total (None where it failed), and
    whether it refused the budget as too small for the range test and one short final."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "disciplined", "tune", f"zoo/{name}", "--budget-minutes",
               f"{minutes:.4f}", "--seed", str(seed), "--quiet", "--out", out]
        began = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return wall, None, "is used up by loading the task" in done.stderr
        summary = json.loads((Path(out) / "summary.json").read_text())
        return wall, summary["wall_seconds_total"], False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(zoo.names()),
                        help="comma-separated zoo tasks (default: all with a stored length)")
    parser.add_argument("--multiples", type=float, nargs="+", default=[3.0],
                        help="budgets as multiples of the stored final training's seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows, ratios, refused, failed = [], [], 0, 0
    for multiple in args.multiples:
        for name in filter(None, args.tasks.split(",")):
            stored = DECISIONS / f"{name}.json"
            if not stored.exists():
                print(f"{name}: no {stored}, skipped", flush=True)
                continue
            seconds = multiple * json.loads(stored.read_text())["final_training_seconds"]
            wall, own, too_small = command_wall(name, seconds / 60, args.seed)
            ratio = wall / seconds
            if too_small:  # a clear error, not a run: counted apart
                refused += 1
                kept, told = "refused", "(too small)"
            elif own is None:  # any other failure: no wall time to read
                failed += 1
                kept, told = "failed", "failed"
            else:
                ratios.append(ratio)
                kept = "yes" if abs(ratio - 1) <= TOLERANCE else "no"
                told = f"{own:.1f} s"
            rows.append(f"| {name} | {multiple:g}x | {seconds:.1f} s | {wall:.1f} s | "
                        f"{told} | {ratio:.2f}x | {kept} |")
            print(rows[-1], flush=True)
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
        f"- within +-{TOLERANCE:.0%}: {inside} of the {len(ratios)} that ran; {failed} "
        f"failed; {refused} "
        "refused as too small for loading, the range test and one short final (the error "
        "says how much to give); of those that ran, wall / budget min "
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
