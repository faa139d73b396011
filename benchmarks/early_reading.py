"""Does `tune`'s reading of short runs pick what a full-length grid picks?

For each task: run `tune` with its defaults (the final training's length is the task's own),
then, for its momentum and weight-decay stages, train every candidate the stage could choose
(all of them, though a tight budget runs fewer) to the final training's full length, at the
hyper-parameters the stage itself trained with (the max LR, batch size and the other values
decided before it). A stage that kept the value it started from (its budget could not buy
runs long enough to be read) is measured too: its candidates and the kept value are trained
at the final training's hyper-parameters, and the kept value is its choice. The stage's
choice agrees when its full-length accuracy is within 0.3 points of the best candidate's.
Compute is counted in optimizer steps and seconds: the stage's growing short runs against
the full-length grid.

    make bench-early-reading
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import header, publish

from disciplined.defaults import BASE_MOMENTUM, MOMENTUM, START_WEIGHT_DECAY
from disciplined.recipe import WEIGHT_DECAYS, tune
from disciplined.searches import MOMENTA
from disciplined.study import Study
from disciplined.tasks import load_task
from disciplined.trials import Budget, TrialSpec, run_trial

MARK = "early-reading"
TASKS = ("mnist1d", "fashion-mnist")
# the stages read, each named for the TrialSpec field it decides
STAGES = ("momentum", "weight_decay")
WITHIN = 0.003  # "within 0.3 points of the final best"


def _value(field: str, value: Any) -> Any:
    """A candidate as the journal's JSON gives it back, made a TrialSpec field again."""
    return tuple(value) if field == "momentum" else value


def _show(field: str, value: Any) -> str:
    return f"({value[0]:g}, {value[1]:g})" if field == "momentum" else f"{value:g}"


def _candidates(field: str, optimizer: str) -> list[Any]:
    """The values the recipe's stage for `field` chooses among."""
    if field == "momentum":
        return [(m, BASE_MOMENTUM) for m in sorted(MOMENTA)]
    return list(WEIGHT_DECAYS[optimizer])


def run(task: str, seed: int) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "study"
        tune(task, out=out, seed=seed)
        summary = json.loads((out / "summary.json").read_text())
        epochs = summary["hyperparameters"]["epochs"]
        with Study(out, resume=True) as study:
            stages = {name: (study.finished_stage(name), study.trials(name)) for name in STAGES}
            final = next(t for t in study.trials("final") if t.label == "final")
    optimizer = load_task(task).optimizer
    for field in STAGES:
        stage = field
        record, trials = stages[stage]
        if record is None:
            rows.append(f"| {task} | {stage} | - | no stage | not measured | - | - |")
            continue
        search = record.outcome.search
        # every value the stage could choose (it may have run fewer), and the one it chose
        values = _candidates(field, optimizer)
        if search is not None and trials:  # the stage ranked runs, at its own values
            decided = getattr(search.decision, field)
            if decided is None:  # a stage that ranked runs always decides its field
                raise RuntimeError(f"{task}: stage {stage} ranked runs but decided nothing")
            chosen = _value(field, decided)
            base: TrialSpec = trials[0].spec
            how = "runs of " + ", ".join(f"{f:.2g}" for f in search.evidence["fractions"]) + \
                " of the final"
        else:  # it kept the value it started from: is that what the grid rewards?
            chosen = MOMENTUM if field == "momentum" else START_WEIGHT_DECAY[optimizer]
            base = final.spec.with_(**{field: chosen})
            how = "kept, not searched: " + record.outcome.reason.split(": ", 1)[-1][:80] + "..."
        values += [] if chosen in values else [chosen]
        grid = {}
        grid_steps, grid_seconds = 0, 0.0
        for v in values:
            spec = base.with_(**{field: v}, budget=Budget(epochs=epochs), eval_samples=None,
                              save_model=None, label=f"grid {_show(field, v)}")
            began = time.perf_counter()
            result = run_trial(spec)
            grid_seconds += time.perf_counter() - began
            grid_steps += result.steps
            grid[v] = result.val_metric or 0.0
        best = max(grid, key=lambda v: grid[v])
        agrees = grid[chosen] >= grid[best] - WITHIN
        short_steps = sum(t.steps for t in trials)
        short_seconds = sum(t.seconds for t in trials)
        rows.append(
            f"| {task} | {stage} | {_show(field, best)} {100 * grid[best]:.2f}% | "
            f"{_show(field, chosen)} {100 * grid[chosen]:.2f}% ({how}) | "
            f"{'yes' if agrees else 'no'} | {short_steps} / {grid_steps} = "
            f"{short_steps / grid_steps:.2f} | {short_seconds:.0f} s / {grid_seconds:.0f} s |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows = [row for task in args.tasks for row in run(task, args.seed)]
    agree = sum("| yes |" in r for r in rows)
    measured = sum("| not measured |" not in r for r in rows)
    lines = [
        *header("Early reading: do tune's short runs pick what a full-length grid picks?",
                "make bench-early-reading"),
        f"- method: `tune(task, seed={args.seed})` with its default stages and budget (the "
        "final training at the task's length: mnist1d 30 epochs, fashion-mnist 4); for its "
        "momentum and weight-decay stages, every candidate the stage could choose (all of "
        "them, where a tight budget ran fewer) is trained to the "
        "final's full length at the values the stage trained with (its max LR, batch size, "
        "and the other values decided before it), one seed; a stage that kept its start "
        "value (no runs long enough to be read fitted its budget) is measured the same way, "
        "its candidates and the kept value trained at the final training's values, the kept "
        "value being its choice. The stage's choice agrees when "
        "its full-length accuracy is within 0.3 points of the best candidate's. Steps and "
        "seconds: the stage's short runs (every length it grew to) against the grid.",
        "",
        "| task | stage | grid's best (full length) | the stage's choice (full length) | agrees | "
        "compute: steps short / grid | wall time short / grid |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"| **agreement** | | | | **{agree}/{measured}** | | |",
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
