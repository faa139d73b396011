"""Do short runs pick the momentum and weight decay the full length rewards? Measured on a
half of the zoo, against full-length runs.

For each task, at its reference grid's best max LR (benchmarks/zoo_reference/), each stage's
candidates train 1cycles of 1/8, 1/4 and 1/2 of the task's final length (seed 0, read on the
same validation subset as tune's short runs, ranked with ties as tune's stages rank them),
and the full length (2 seeds):

- weight decay: the grid's own weight decays at that LR, at momentum 0.95 -> 0.85 (the full
  length is the grid's own runs);
- momentum: tune's candidates (0.9, 0.95, 0.97, 0.99, each cycling to 0.85) at the grid's best
  weight decay (0.95's full length is the grid's run).

The full length is judged by what the task is scored by (accuracy for classifiers, else the
validation loss); candidates within the seeds' noise of the best tie with it. The table puts
side by side what each way of reading the short runs would have chosen, and how far its
full-length score is from the best: the stage's clear winner with each tie-break, and keeping
the default without running the stage. Rules are designed on the dev half (the default) only;
the test half is measured only to report them.

    python benchmarks/stage_bias.py --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import header, publish
from _zoo import Run, measure_half, stamp, train_once

from disciplined import zoo
from disciplined.compare import Comparison
from disciplined.defaults import BASE_MOMENTUM, MOMENTUM, START_WEIGHT_DECAY
from disciplined.recipe import WEIGHT_DECAYS, nearest
from disciplined.searches import MOMENTA
from disciplined.tasks import load_task
from disciplined.trials import EVAL_SAMPLES, Budget, TrialSpec, train

FRACTIONS = (1 / 8, 1 / 4, 1 / 2)
SEEDS = (0, 1)
HERE = Path(__file__).parent
FOLDER = HERE / "stage_bias"
REFERENCE = HERE / "zoo_reference"
STAGES = ("momentum", "weight_decay")


def by_accuracy(grid: dict[str, Any]) -> bool:
    return bool(grid["score"] == "val_accuracy")


def _error(run: dict[str, Any], accuracy: bool) -> float | None:
    """A full-length run's score as a loss-like number (lower is better); None: diverged."""
    if run["diverged"]:
        return None
    value = run["val_metric"] if accuracy else run["val_loss"]
    return None if value is None else (1 - value if accuracy else value)


def _short(task_name: str, epochs: float, lr: float, weight_decays: Sequence[float],
           momenta: Sequence[tuple[float, float]], fraction: float,
           task: Any) -> list[dict[str, Any]]:
    """One rung: every candidate (the ones varied; the other field fixed) at `fraction`."""
    specs = [TrialSpec(f"zoo/{task_name}", max_lr=lr, budget=Budget(epochs=epochs * fraction),
                       momentum=m, weight_decay=wd, eval_samples=EVAL_SAMPLES,
                       label=f"m={m[0]:g} wd={wd:g} f={fraction:g}")
             for m in momenta for wd in weight_decays]
    results = [train(spec, task=task)[0] for spec in specs]
    ranks = {r.label: r.rank for r in Comparison.of(results).ranking}
    rows = []
    for spec, result in zip(specs, results, strict=True):
        loss = result.val_loss if result.val_loss is not None and \
            math.isfinite(result.val_loss) else None
        verdict = result.diagnosis.verdict if result.diagnosis is not None else None
        rows.append({"momentum": list(spec.momentum), "weight_decay": spec.weight_decay,
                     "fraction": fraction, "val_loss": loss, "val_metric": result.val_metric,
                     "verdict": verdict, "rank": ranks.get(spec.label)})
        print(f"  {task_name} 1/{round(1 / fraction)} {spec.label}: {loss} "
              f"(rank {ranks.get(spec.label)}, {verdict})", flush=True)
    return rows


def measure(name: str) -> dict[str, Any]:
    grid = json.loads((REFERENCE / f"{name}.json").read_text())
    task = load_task(f"zoo/{name}").loaded()
    started = time.perf_counter()
    lr, wd_best = grid["best"]["max_lr"], grid["best"]["weight_decay"]
    epochs = grid["epochs"]  # the task's final length, as the grid trained it
    decays = list(grid["weight_decays"])
    momenta = [(m, BASE_MOMENTUM) for m in sorted(MOMENTA)]
    full: list[dict[str, Any]] = []  # the grid's runs are read from its file
    for m in momenta:
        if m == MOMENTUM:
            continue
        for seed in SEEDS:
            run: Run = train_once(task, name, lr, wd_best, seed, momentum=m)
            full.append({"max_lr": lr, "weight_decay": wd_best, "seed": seed,
                         "val_loss": run.val_loss, "val_metric": run.val_metric,
                         "diverged": run.diverged, "momentum": list(m)})
            print(f"  {name} full m={m[0]:g} seed {seed}: {run.val_loss} {run.val_metric}",
                  flush=True)
    short = []
    for fraction in FRACTIONS:
        short += [{**r, "stage": "weight_decay"} for r in _short(
            name, epochs, lr, decays, [MOMENTUM], fraction, task)]
        short += [{**r, "stage": "momentum"} for r in _short(
            name, epochs, lr, [wd_best], momenta, fraction, task)]
    return {"task": name, "split": grid["split"], "score": grid["score"],
            "optimizer": grid["optimizer"], "max_lr": lr, "weight_decay": wd_best,
            "full_length": full, "short": short,  # full_length: the new momenta's
            "wall_seconds": round(time.perf_counter() - started, 1),
            **stamp(f"python benchmarks/stage_bias.py --tasks {name} --force")}


# --- reading the files -----------------------------------------------------------------

def candidates(data: dict[str, Any], stage: str) -> list[Any]:
    """The stage's candidates in ascending order (momentum by its maximum). Weight decays:
    the grid's that tune's stage also tries (a subset of tune's: the grids have no 1e-5 for
    SGD nor 1e-3 for AdamW; a grid widened past tune's values has more, left out here)."""
    if stage == "weight_decay":
        return sorted({r["weight_decay"] for r in data["short"] if r["stage"] == stage}
                      & set(WEIGHT_DECAYS[data["optimizer"]]))
    return sorted({tuple(r["momentum"]) for r in data["short"] if r["stage"] == stage})


def _key(row: dict[str, Any], stage: str) -> Any:
    return row["weight_decay"] if stage == "weight_decay" else tuple(row["momentum"])


def grid_runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The reference grid's full-length runs at the task's max LR (momentum 0.95 -> 0.85).
    The grid keeps its LRs to 6 significant figures."""
    grid = json.loads((REFERENCE / f"{data['task']}.json").read_text())
    return [{**run, "momentum": list(MOMENTUM)} for run in grid["runs"]
            if run.get("policy", "one-cycle") == "one-cycle" and run["seed"] in SEEDS
            and math.isclose(run["max_lr"], data["max_lr"], rel_tol=1e-5)]


def full_scores(data: dict[str, Any], stage: str) -> tuple[dict[Any, float | None], float]:
    """Each candidate's full-length score (loss-like, the mean over seeds; None: a seed
    diverged) and the seeds' noise: the median standard error of a candidate's mean."""
    accuracy = data["score"] == "val_accuracy"
    seeds: dict[Any, list[float | None]] = {}
    for run in [*grid_runs(data), *data["full_length"]]:
        if stage == "weight_decay" and tuple(run["momentum"]) != MOMENTUM:
            continue
        if stage == "momentum" and not math.isclose(run["weight_decay"], data["weight_decay"]):
            continue
        seeds.setdefault(_key(run, stage), []).append(_error(run, accuracy))
    scores = {k: None if None in vs else statistics.mean(vs)  # type: ignore[type-var]
              for k, vs in seeds.items() if k in candidates(data, stage)}
    errors = [statistics.stdev(vs) / math.sqrt(len(vs))  # type: ignore[arg-type]
              for k, vs in seeds.items()
              if k in candidates(data, stage) and len(vs) > 1 and None not in vs]
    return scores, statistics.median(errors) if errors else 0.0


def leaders(data: dict[str, Any], stage: str, fraction: float) -> list[Any]:
    """The candidates sharing the first rank of the short runs at `fraction`, ascending."""
    rows = [r for r in data["short"] if r["stage"] == stage and r["fraction"] == fraction
            and r["rank"] is not None]
    if stage == "weight_decay":
        rows = [r for r in rows if _key(r, stage) in candidates(data, stage)]
    if not rows:
        return []
    top = min(r["rank"] for r in rows)
    return sorted(_key(r, stage) for r in rows if r["rank"] == top)


Rule = Callable[[list[Any], list[Any], Any], Any]

# What each way of reading a rung picks: (its leaders, every candidate, the default) -> value.
RULES: dict[str, Rule] = {
    "tied: the largest": lambda lead, values, default: max(lead),
    "tied: the smallest": lambda lead, values, default: min(lead),
    # tune's rule (recipe._tied_to_start), with tune's own `nearest`
    "tied: the tied one nearest the start (tune)": lambda lead, values, default: nearest(
        lead, default, 1)[0],
    "tied: the start (nearest candidate), tied or not": lambda lead, values, default: (
        lead[0] if len(lead) == 1 else _nearest(values, default)),
    "keep the default (no stage)": lambda lead, values, default: _nearest(values, default),
}


def _nearest(values: list[Any], default: Any) -> Any:
    def where(v: Any) -> float:
        x = v[0] if isinstance(v, tuple) else v
        return math.log10(x) if x > 0 else -9.0
    return min(values, key=lambda v: abs(where(v) - where(default)))


def default(stage: str, optimizer: str) -> Any:
    """What tune starts the stage from: the paper's momentum, the optimizer's weight decay
    (defaults.START_WEIGHT_DECAY); a value between two candidates reads as the nearer one
    on a log scale."""
    return MOMENTUM if stage == "momentum" else START_WEIGHT_DECAY[optimizer]


def regret(data: dict[str, Any], stage: str, value: Any) -> float | None:
    """How far `value`'s full-length score is from the best's, in the task's score's units
    (accuracy points for classifiers, else a ratio minus 1); 0 within the seeds' noise."""
    scores, noise = full_scores(data, stage)
    found = [v for v in scores.values() if v is not None]
    own = scores.get(value)
    if not found or own is None:
        return None
    gap = max(0.0, own - min(found) - noise)
    return 100 * gap if data["score"] == "val_accuracy" else gap / min(found)


def table(split: str) -> list[str]:
    names = [t.name for t in zoo.ZOO if t.split == split]
    files = [json.loads((FOLDER / f"{n}.json").read_text()) for n in names
             if (FOLDER / f"{n}.json").exists()]
    lines = [f"- {split} half, {len(files)} of {len(names)} tasks measured.", ""]
    if not files:
        return lines
    head = ["task", "stage", "full-length best (within noise)"] + [
        f"1/{round(1 / f)}: short-run leaders" for f in FRACTIONS]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals: dict[tuple[str, str, float], list[float]] = {}
    for data in files:
        accuracy = data["score"] == "val_accuracy"
        for stage in STAGES:
            values = candidates(data, stage)
            scores, noise = full_scores(data, stage)
            found = {k: v for k, v in scores.items() if v is not None}
            top = min(found.values()) if found else math.inf
            best = [k for k in values if k in found and found[k] <= top + noise]
            cells = [data["task"], stage, ", ".join(_show(stage, v) for v in best)]
            start = default(stage, data["optimizer"])
            for fraction in FRACTIONS:
                lead = leaders(data, stage, fraction)
                cells.append(", ".join(_show(stage, v) for v in lead) or "-")
                for rule, pick in RULES.items():
                    if not lead:
                        continue
                    r = regret(data, stage, pick(lead, values, start))
                    if r is not None:
                        totals.setdefault((stage, rule, fraction), []).append(
                            r if accuracy else 100 * r)
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean regret of each reading over the tasks (accuracy points for "
              "classifiers, percent of the best loss for the others; 0 within the seeds' "
              "noise):", "", "| stage | reading | " +
              " | ".join(f"1/{round(1 / f)}" for f in FRACTIONS) + " |",
              "|---|---|" + "---|" * len(FRACTIONS)]
    for stage in STAGES:
        for rule in RULES:
            cells = []
            for fraction in FRACTIONS:
                got = totals.get((stage, rule, fraction), [])
                cells.append(f"{statistics.mean(got):.2f} ({len(got)})" if got else "-")
            lines.append(f"| {stage} | {rule} | " + " | ".join(cells) + " |")
    return lines


def _show(stage: str, value: Any) -> str:
    return f"{value[0]:g}" if stage == "momentum" else f"{value:g}"


def main() -> None:
    args = measure_half(__doc__.splitlines()[0], FOLDER, measure)
    lines = header("Short runs against the full length for momentum and weight decay "
                   "(stage-bias)", "make stage-bias")
    lines += ["", "\n\n".join(__doc__.split("\n\n")[1:4]), "",
              "Caveats: one seed of short runs; the mean mixes accuracy points with percents "
              "of a loss, so one regression can carry it; a pick that diverged at full "
              "length would be left out of its mean (the count in brackets says how many "
              "were read); the grids hold a subset of tune's weight decays (no 1e-5 for "
              "SGD, no 1e-3 for AdamW); SGD's starting weight decay 5e-4 is no candidate "
              "and is read as its nearer one on a log scale, 1e-3; where a "
              "grid was widened past tune's weight decays, those values are left out and "
              "the leaders are the first-ranked of the rest.", ""]
    for split in ("dev", "test"):
        lines += [f"### {split} half", "", *table(split), ""]
    publish(lines, args.write, "stage-bias")


if __name__ == "__main__":
    main()
