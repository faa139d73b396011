"""Where the full length's best max LRs lie from what tune knows before its short runs.

For each zoo task with a reference grid (benchmarks/zoo_reference/), tune's first stage is
run as tune runs it (the range test at the start weight decay and momentum, seed 0, a 4x
longer sweep when the first cannot tell), giving the anchor the LR stage's candidates hang
from and the provisional max LR (recipe.provisional_max_lr). Against the grid's best max
LRs (each LR's best weight decay, mean over the seeds; LRs within the seeds' noise of the
best tie with it), the table gives how many decades from the nearest of them each of
these lands: the LR candidate nearest the provisional value, the lowest candidate and the
middle one. When no run length tells the LR stage's candidates apart, one of these has to
be taken on the range test's word alone: this says which the grids support.

Then the grid's max LRs train 1cycles of 1/8, 1/4 and 1/2 of the final length (seeds 0
and 1, at the grid's weight decay nearest tune's start, read on tune's validation subset
and ranked with ties as tune's stages rank them, each seed apart), and each way of settling
a tie among the leaders is scored by its pick's regret at full length: accuracy points for
classifiers, percent of the best loss for the others, 0 within the seeds' noise. The ways:
the lowest (tune's), the middle, the highest, the one nearest the provisional max LR, and
the lowest whose run was not still underfitting at its end (tried in tune and withdrawn:
in tune's own runs it acted twice on the dev half, both for the worse). Rules are designed on the
dev half (the default); the test half is measured only to report them.

    python benchmarks/lr_prior.py --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from _common import header, publish
from _zoo import measure_half, stamp

from disciplined import zoo
from disciplined.compare import Comparison
from disciplined.defaults import MOMENTUM, NUM_STEPS, START_WEIGHT_DECAY
from disciplined.range_test import RangeTestResult, task_range_test
from disciplined.recipe import (
    LONGER_SWEEP,
    horizon_bias,
    lowest_tied_lr,
    lr_candidates,
    nearest,
    provisional_max_lr,
)
from disciplined.tasks import load_task
from disciplined.trials import EVAL_SAMPLES, Budget, TrialResult, TrialSpec, train

FOLDER = Path(__file__).with_name("lr_prior")
REFERENCE = Path(__file__).with_name("zoo_reference")
PICKS = ("nearest the provisional", "lowest", "middle")
FRACTIONS = (1 / 8, 1 / 4, 1 / 2)
# Short runs are trained from two seeds: two readings of each tie, and the spread between
# them says how much one seed's order can be trusted.
SEEDS = (0, 1)
TIE_RULES = ("lowest (tune's)", "middle", "highest", "nearest the provisional",
             "lowest not underfitting (tried, withdrawn)")


def grid_best(grid: dict[str, Any]) -> list[float]:
    """The grid's max LRs whose best weight decay scores within the seeds' noise of the
    best (accuracy for classifiers, else the loss; a diverged seed rules its cell out)."""
    accuracy = grid["score"] == "val_accuracy"
    cells: dict[tuple[float, float], list[float | None]] = {}
    for run in grid["runs"]:
        if run.get("policy", "one-cycle") != "one-cycle":
            continue
        value = None if run["diverged"] else (
            1 - run["val_metric"] if accuracy else run["val_loss"])
        cells.setdefault((run["max_lr"], run["weight_decay"]), []).append(value)
    done = {k: [v for v in vs if v is not None] for k, vs in cells.items() if None not in vs}
    means = {k: statistics.mean(vs) for k, vs in done.items()}
    errors = [statistics.stdev(vs) / math.sqrt(len(vs)) for vs in done.values() if len(vs) > 1]
    noise = statistics.median(errors) if errors else 0.0
    top = min(means.values())
    return sorted({lr for (lr, _wd), v in means.items() if v <= top + noise})


def measure(name: str) -> dict[str, Any]:
    start = time.perf_counter()
    task = load_task(str(zoo.path(name)))

    def sweep(steps: int) -> RangeTestResult:
        return task_range_test(task, weight_decay=START_WEIGHT_DECAY[task.optimizer],
                               momentum=MOMENTUM, batch_size=task.batch_size, seed=0,
                               num_steps=steps)

    rt = sweep(NUM_STEPS)
    longer = not rt.reading.conclusive
    if longer:
        rt = sweep(NUM_STEPS * LONGER_SWEEP)
    grid = json.loads((REFERENCE / f"{name}.json").read_text())
    decay = start_decay(grid)
    short = []
    for seed in SEEDS:
        for fraction in FRACTIONS:
            specs = [TrialSpec(f"zoo/{name}", max_lr=lr, weight_decay=decay, seed=seed,
                               budget=Budget(epochs=grid["epochs"] * fraction),
                               eval_samples=EVAL_SAMPLES, label=f"lr={lr:g} f={fraction:g}")
                     for lr in grid["max_lrs"]]
            results = [train(spec, task=task.loaded())[0] for spec in specs]
            ranks = {r.label: r.rank for r in Comparison.of(results).ranking}
            short += [short_row(fraction, spec, r, ranks.get(spec.label))
                      for spec, r in zip(specs, results, strict=True)]
            print(f"  {name} seed {seed} 1/{round(1 / fraction)}: " + ", ".join(
                f"{row['max_lr']:g} rank {row['rank']}" for row in short[-len(specs):]),
                flush=True)
    return {"task": name, "split": grid["split"], "anchor": rt.reading.anchor,
            "conclusive": rt.reading.conclusive, "longer_sweep": longer,
            "why": rt.reading.why, "provisional": provisional_max_lr(rt),
            "grid_best": grid_best(grid), "weight_decay": decay, "short": short,
            "wall_seconds": round(time.perf_counter() - start, 1),
            **stamp(f"python benchmarks/lr_prior.py --tasks {name} --force")}


def short_row(fraction: float, spec: TrialSpec, result: TrialResult,
              rank: int | None) -> dict[str, Any]:
    """One short run as stored: its place, final loss and the validation curve it was read
    from (so that other ways of ranking can be tried on the same runs)."""
    history, diagnosis = result.history, result.diagnosis
    return {"fraction": fraction,
            "seed": spec.seed, "max_lr": spec.max_lr, "rank": rank,
            "val_loss": result.val_loss if result.val_loss is not None
            and math.isfinite(result.val_loss) else None,
            "noise": None if diagnosis is None else diagnosis.evidence.get("noise"),
            "verdict": None if diagnosis is None else diagnosis.verdict,
            "eval_step": [] if history is None else history.eval_step,
            "val_curve": [] if history is None else
            [v if math.isfinite(v) else None for v in history.val_loss]}


def start_decay(grid: dict[str, Any]) -> float:
    """The grid's weight decay nearest (on a log scale) the one tune's stages start from."""
    start = START_WEIGHT_DECAY[grid["optimizer"]]
    return min(grid["weight_decays"],
               key=lambda wd: abs(math.log10(wd / start)) if wd > 0 else math.inf)


def full_regret(data: dict[str, Any]) -> dict[float, float | None]:
    """Each grid LR's full-length regret at the short runs' weight decay, from the best of
    those LRs (accuracy points, or percent of the best loss; 0 within the seeds' noise;
    None: a seed diverged)."""
    grid = json.loads((REFERENCE / f"{data['task']}.json").read_text())
    accuracy = grid["score"] == "val_accuracy"
    seeds: dict[float, list[float | None]] = {}
    for run in grid["runs"]:
        if run.get("policy", "one-cycle") == "one-cycle" and \
                math.isclose(run["weight_decay"], data["weight_decay"]):
            seeds.setdefault(run["max_lr"], []).append(None if run["diverged"] else (
                1 - run["val_metric"] if accuracy else run["val_loss"]))
    means = {lr: None if None in vs else statistics.mean(vs)  # type: ignore[type-var]
             for lr, vs in seeds.items()}
    errors = [statistics.stdev(vs) / math.sqrt(len(vs)) for vs in seeds.values()  # type: ignore
              if len(vs) > 1 and None not in vs]
    noise = statistics.median(errors) if errors else 0.0
    top = min(v for v in means.values() if v is not None)
    scale = 100 if accuracy else 100 / top
    return {lr: None if v is None else (0.0 if v <= top + noise else (v - top) * scale)
            for lr, v in means.items()}


def readings(data: dict[str, Any], fraction: float) -> dict[int, list[dict[str, Any]]]:
    """The ranked short runs at `fraction`, by seed (files from before seeds were stored hold
    seed 0 only)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in data["short"]:
        if row["fraction"] == fraction and row["rank"] is not None:
            out.setdefault(row.get("seed", 0), []).append(row)
    return out


def leaders(rows: list[dict[str, Any]]) -> list[float]:
    """The max LRs of the first rank, ascending."""
    top = min(r["rank"] for r in rows)
    return sorted(r["max_lr"] for r in rows if r["rank"] == top)


def lowest_not_underfitting(tied: list[float], verdicts: dict[float, Any]) -> float:
    """A tie rule tried in tune (37ee076) and withdrawn: the lowest tied LR whose run was
    not still underfitting at its end (the lowest, if all were)."""
    settled = [lr for lr in tied if verdicts.get(lr) != "underfitting"]
    return min(settled or tied)


def tie_picks(rows: list[dict[str, Any]], provisional: float) -> dict[str, float]:
    """What each tie rule takes among the leaders of these ranked runs."""
    lead = leaders(rows)
    verdicts = {r["max_lr"]: r.get("verdict") for r in rows}
    return {"lowest (tune's)": lead[0], "middle": lead[(len(lead) - 1) // 2],
            "highest": lead[-1],
            "nearest the provisional": nearest(lead, provisional, 1)[0],
            "lowest not underfitting (tried, withdrawn)": lowest_not_underfitting(lead,
                                                                                  verdicts)}


def tie_table(files: list[dict[str, Any]]) -> list[str]:
    lines = ["| task | " + " | ".join(f"1/{round(1 / f)}: leaders" for f in FRACTIONS) + " |",
             "|---|" + "---|" * len(FRACTIONS)]
    got: dict[tuple[str, float], list[float]] = {}
    for data in files:
        regret = full_regret(data)
        cells = [data["task"]]
        for fraction in FRACTIONS:
            by_seed = readings(data, fraction)
            cells.append("; ".join(f"seed {seed}: " + ", ".join(f"{lr:.3g}" for lr in
                                                                leaders(rows))
                                   for seed, rows in sorted(by_seed.items())))
            for rows in by_seed.values():
                for rule, lr in tie_picks(rows, data["provisional"]).items():
                    value = regret.get(lr)
                    if value is not None:
                        got.setdefault((rule, fraction), []).append(value)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| tie among the leaders settled by | " +
              " | ".join(f"1/{round(1 / f)}" for f in FRACTIONS) + " |",
              "|---|" + "---:|" * len(FRACTIONS)]
    for rule in TIE_RULES:
        cells = [f"{statistics.mean(v):.2f} ({len(v)})" if (v := got.get((rule, f))) else "-"
                 for f in FRACTIONS]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return lines


# How a tie among the leaders of runs shorter than the final length is settled, against
# tune's (the lowest): by the tie's winner (its lowest validation loss) lowered by the
# horizon correction as a clear winner is, by the lower or the higher of that and the
# lowest, and with no correction at all (the short runs' winner, tie or not). Tried on the
# dev half in the eighth session of 2026-12-04 and not kept: tune's rule was as good or
# better there on both kinds of task.
STAGE_RULES = ("the LR stage's pick (tune's: a tie's lowest)",
               "a tie's winner, horizon-corrected (tried)",
               "the lower of those two (tried)", "the higher of those two (tried)",
               "the short runs' winner, uncorrected (tried)",
               "the range test's reading alone")


def stage_picks(rows: list[dict[str, Any]], fraction: float, lrs: list[float],
                by_accuracy: bool) -> dict[str, float]:
    """What the LR stage would take from these ranked runs under each of STAGE_RULES but the
    last: a clear winner lowered by the horizon correction (to the grid's LR nearest the
    corrected value), a tie settled by the rule."""
    lead = leaders(rows)
    loss = {r["max_lr"]: r["val_loss"] for r in rows}
    winner = min(lead, key=lambda lr: math.inf if loss[lr] is None else loss[lr])

    def snap(value: float) -> float:
        return min(lrs, key=lambda lr: abs(math.log10(lr / value)))

    corrected = snap(winner * 10 ** -horizon_bias(fraction, by_accuracy))
    if len(lead) == 1:
        return dict.fromkeys(STAGE_RULES[:4], corrected) | {STAGE_RULES[4]: winner}
    lowest = lowest_tied_lr(lead, {r["max_lr"]: r.get("verdict") for r in rows})
    return {STAGE_RULES[0]: lowest, STAGE_RULES[1]: corrected,
            STAGE_RULES[2]: min(lowest, corrected), STAGE_RULES[3]: max(lowest, corrected),
            STAGE_RULES[4]: winner}


def stage_table(files: list[dict[str, Any]]) -> list[str]:
    """The LR stage's pick from runs of each length, by each way of settling its ties,
    against the range test's reading alone (the grid's LR nearest the provisional max LR):
    what a budget with no room for the LR stage's runs gets instead. Mean full-length
    regret, as the tie rules', apart for classifiers (points) and the others (percent)."""
    got: dict[tuple[str, bool, float], list[float]] = {}
    for data in files:
        regret = full_regret(data)
        lrs = sorted(regret)
        reading = min(lrs, key=lambda lr: abs(math.log10(lr / data["provisional"])))
        grid = json.loads((REFERENCE / f"{data['task']}.json").read_text())
        by_accuracy = grid["score"] == "val_accuracy"
        # a pick that diverged at full length counts as the worst LR that did not
        worst = max(v for v in regret.values() if v is not None)
        for fraction in FRACTIONS:
            for rows in readings(data, fraction).values():
                chosen = stage_picks(rows, fraction, lrs, by_accuracy) | {
                    STAGE_RULES[-1]: reading}
                for who, lr in chosen.items():
                    value = regret.get(lr)
                    got.setdefault((who, by_accuracy, fraction), []).append(
                        worst if value is None else value)
    lines = ["| max LR from | task judged by | " +
             " | ".join(f"1/{round(1 / f)}" for f in FRACTIONS) + " |",
             "|---|---|" + "---:|" * len(FRACTIONS)]
    for who in STAGE_RULES:
        for by_accuracy in (True, False):
            cells = [f"{statistics.mean(v):.2f} ({len(v)})"
                     if (v := got.get((who, by_accuracy, f))) else "-" for f in FRACTIONS]
            kind = "accuracy (points)" if by_accuracy else "loss (percent)"
            lines.append(f"| {who} | {kind} | " + " | ".join(cells) + " |")
    return lines


def picks(data: dict[str, Any]) -> dict[str, float]:
    values = lr_candidates(data["anchor"])
    return {"nearest the provisional": nearest(values, data["provisional"], 1)[0],
            "lowest": values[0], "middle": values[len(values) // 2]}


def decades(lr: float, best: list[float]) -> float:
    return min(abs(math.log10(lr / b)) for b in best)


def table(split: str) -> list[str]:
    files = [json.loads((FOLDER / f"{t.name}.json").read_text()) for t in zoo.ZOO
             if t.split == split and (FOLDER / f"{t.name}.json").exists()]
    lines = [f"- {split} half, {len(files)} tasks.", ""]
    if not files:
        return lines
    lines += ["| task | anchor | conclusive | provisional | grid's best max LRs | " +
              " | ".join(f"{p}: LR (decades off)" for p in PICKS) + " |",
              "|---|---:|---|---:|---|" + "---:|" * len(PICKS)]
    off: dict[str, list[float]] = {p: [] for p in PICKS}
    for data in files:
        chosen = picks(data)
        cells = [data["task"], f"{data['anchor']:.3g}",
                 ("yes" if data["conclusive"] else "no") +
                 (" (longer sweep)" if data["longer_sweep"] else ""),
                 f"{data['provisional']:.3g}", ", ".join(f"{b:.3g}" for b in data["grid_best"])]
        for p in PICKS:
            d = decades(chosen[p], data["grid_best"])
            off[p].append(d)
            cells.append(f"{chosen[p]:.3g} ({d:.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| pick | mean decades off | median | within half a decade |",
              "|---|---:|---:|---:|"]
    for p in PICKS:
        near = sum(d <= 0.5 + 1e-9 for d in off[p])
        lines.append(f"| {p} | {statistics.mean(off[p]):.2f} | {statistics.median(off[p]):.2f} "
                     f"| {near} of {len(off[p])} |")
    short = [data for data in files if data.get("short")]
    if short:
        lines += ["", "Short runs at the grid's max LRs, the leaders (first rank) at each "
                  "length, and the mean full-length regret of each tie rule's pick (readings, "
                  "one per task and seed, in brackets; a pick that diverged at full length "
                  "is left out):", "",
                  *tie_table(short), "",
                  "The LR stage's pick from those runs (a clear winner horizon-corrected, a "
                  "tie settled by tune's rule or by one of the rules tried against it) "
                  "against the range test's reading alone, what a budget too small for the "
                  "LR stage's runs keeps (mean full-length regret; a pick that diverged "
                  "counts as the grid's worst LR that did not):", "",
                  *stage_table(short)]
    return lines


def main() -> None:
    args = measure_half(__doc__.splitlines()[0], FOLDER, measure)
    lines = header("The range test's word on the max LR, against the grids (lr-prior)",
                   "make lr-prior")
    lines += ["", __doc__.split("\n\n")[1], "",
              "Caveats: one range test per task (seed 0); a grid's best set is as wide as "
              "its seeds' noise; the candidates are half a decade apart, so 0.25 decades "
              "off is the closest a candidate can be in general. The date and machine "
              "above are the tables' writing; each task's measurement keeps its own in "
              "benchmarks/lr_prior/NAME.json (stored files are read again, not measured "
              "again, unless --force).", ""]
    for split in ("dev", "test"):
        lines += [f"### {split} half", "", *table(split), ""]
    publish(lines, args.write, "lr-prior")


if __name__ == "__main__":
    main()
