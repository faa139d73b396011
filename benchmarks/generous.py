"""A generous budget: what `tune` chooses with 30 final trainings' time, against the grid.

bench-decisions measures `tune` at 3x and 10x one final training, where its stages use
the time. A user who gives a minute to a task whose training takes a second or two gives
30 trainings and more: Optuna TPE buys a grid with that (FINDINGS), and the recipe must
turn it into as good a decision. This runs `tune` at `--multiple` (default 30) times T, T
timed again now as bench-decisions times it, on the zoo's tasks whose stored training takes
under 2 s, for each seed of `--seeds`; its choice is retrained at the task's length on
seeds 0 and 1 and scored against the zoo's grid, as bench-decisions scores it. Every draw
is stored in benchmarks/generous/<task>.json under its multiple, seed and library commit,
so that two libraries can be set side by side (an older one measured from a git worktree
with `PYTHONPATH` at its src).

    make bench-generous
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _common import header, publish
from _zoo import stamp
from bench_decisions import (
    Retrainer,
    attempt,
    final_training_seconds,
    library_commit,
    run_tune,
)
from budget_wall import CHEAP  # the tasks bench-budget also gives a generous budget

from disciplined import zoo
from disciplined.tasks import load_task

MARK = "generous"
OUT = Path(__file__).with_name("generous")
DECISIONS = Path(__file__).with_name("decisions")
GRIDS = Path(__file__).with_name("zoo_reference")


def cheap_tasks() -> list[str]:
    return [n for n in zoo.names() if (DECISIONS / f"{n}.json").exists() and json.loads(
        (DECISIONS / f"{n}.json").read_text())["final_training_seconds"] < CHEAP]


def measure(name: str, multiple: float, seeds: list[int]) -> None:
    path = OUT / f"{name}.json"
    data = json.loads(path.read_text()) if path.exists() else {"task": name, "draws": {}}
    task = load_task(f"zoo/{name}")
    retrain = Retrainer(task, name)
    seconds, how = final_training_seconds(task, name)
    library = library_commit()
    for seed in seeds:
        print(f"{name}: tune at {multiple:g}x ({multiple * seconds:.0f} s), seed {seed}",
              flush=True)
        data["draws"][f"{multiple:g}x seed {seed} {library}"] = {
            **attempt(lambda s=seed: run_tune(name, multiple * seconds, retrain, s),
                      budget_seconds=multiple * seconds),
            "multiple": multiple, "seed": seed, "library": library,
            "final_training_seconds": seconds, "final_training_seconds_from": how}
    data.update(stamp(f"python benchmarks/generous.py --tasks {name}"))
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")


def regret(grid: dict[str, Any], score: float | None) -> str:
    """A choice's mean score against the grid's best: points for a classifier, the loss's
    ratio otherwise (scores are accuracies, or negated losses)."""
    if score is None:
        return "failed"
    best = grid["best"]["mean_score"]
    if grid["score"] == "val_accuracy":
        return f"{100 * (best - score):+.1f} pt"
    return f"{score / best:.2f}x"


def table(multiple: float) -> list[str]:
    rows = []
    libraries: list[str] = []
    for path in sorted(OUT.glob("*.json")):
        for draw in json.loads(path.read_text())["draws"].values():
            if draw["multiple"] == multiple and draw["library"] not in libraries:
                libraries.append(draw["library"])
    for path in sorted(OUT.glob("*.json")):
        data = json.loads(path.read_text())
        grid = json.loads((GRIDS / path.name).read_text())
        cells = []
        for library in libraries:
            draws = [d for d in data["draws"].values()
                     if d["multiple"] == multiple and d["library"] == library]
            if not draws:
                cells.append("-")
                continue
            walls = [d["wall_seconds"] / d["budget_seconds"] for d in draws
                     if "wall_seconds" in d]
            scores = " / ".join(regret(grid, d.get("mean_score")) for d in draws)
            wall = f"{statistics.median(walls):.2f}x" if walls else "-"
            cells.append(f"{scores} ({wall} of the budget)")
        naive = grid["naive"]["mean_score"]
        naive_cell = "diverged" if naive is None else regret(grid, naive)
        rows.append(f"| {data['task']} | {naive_cell} | " + " | ".join(cells) + " |")
    return [f"| task | naive | {' | '.join(f'tune {multiple:g}x, {lib}' for lib in libraries)} |",
            "|---|---|" + "---|" * len(libraries), *rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=None,
                        help=f"comma-separated zoo tasks (default: those whose stored final "
                             f"training takes under {CHEAP:g} s)")
    parser.add_argument("--multiple", type=float, default=30.0)
    parser.add_argument("--seeds", default="0", help="comma-separated tune seeds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.tasks.split(",") if args.tasks is not None else cheap_tasks()
    started = time.perf_counter()
    for name in filter(None, names):
        measure(name, args.multiple, [int(s) for s in args.seeds.split(",")])
    print(f"measured in {time.perf_counter() - started:.0f} s", flush=True)
    lines = [
        *header(f"A generous budget: tune at {args.multiple:g} final trainings against the grid",
                "make bench-generous"),
        f"- `tune zoo/<task> --budget-minutes` at {args.multiple:g}x T (one final training, "
        "timed again before each task, torch threads 1) on the zoo's tasks whose stored "
        f"training takes under {CHEAP:g} s; its choice retrained at the task's length on "
        "seeds 0 and 1 and scored against the grid's best (accuracy points, or the loss's "
        "ratio), one cell per tune seed, and the median wall time against the budget. Each "
        "column is a library (the last commit that changed src); draws in "
        "benchmarks/generous/.",
        "",
        *table(args.multiple),
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
