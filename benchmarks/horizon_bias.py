"""How far do short runs misjudge the max LR? Measured on a half of the zoo, against its grid.

For each task, every max LR of its reference grid (at weight decay 0, seed 0) trains a 1cycle
of 1/8, 1/4 and 1/2 of the task's final length, read on the same validation subset as tune's
short runs; the LR with the lowest short-run validation loss (what tune's stages rank by) is
compared with the LRs whose full-length runs (the grid's, mean of its seeds) score best by
what the task is judged by: accuracy where it reports one, else the validation loss. The
bias is log10(short-run best / nearest full-length best) in decades: positive when short
runs favour a higher LR than the full length rewards. The medians are taken apart for the
two kinds of score (the recipe applies one correction to both). A median says nothing of
what a wrong correction costs, so a second table reads the same files as regret: the
winner lowered by 0, 0.5 or 1 decade, scored at full length. The recipe's correction is
designed on the dev half only (the default), and the test half is measured only to report it.

    python benchmarks/horizon_bias.py --split dev --write benchmarks/RESULTS.md
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
from disciplined.tasks import load_task
from disciplined.trials import EVAL_SAMPLES, Budget, TrialSpec, train

FRACTIONS = (1 / 8, 1 / 4, 1 / 2)
HERE = Path(__file__).parent
FOLDER = HERE / "horizon_bias"
REFERENCE = HERE / "zoo_reference"


def by_accuracy(grid: dict[str, Any]) -> bool:
    """Whether the task is judged by its accuracy (else by its validation loss)."""
    return bool(grid["score"] == "val_accuracy")


def per_seed(grid: dict[str, Any], field: str) -> dict[float, list[float | None]]:
    """Each max LR's full-length `field`, one value per seed, at weight decay 0 (None: that
    seed diverged)."""
    out: dict[float, list[float | None]] = {}
    for run in grid["runs"]:
        if run["weight_decay"] == 0 and run.get("policy", "one-cycle") == "one-cycle":
            out.setdefault(run["max_lr"], []).append(None if run["diverged"] else run[field])
    return out


def full_length(grid: dict[str, Any], field: str = "val_loss") -> dict[float, float | None]:
    """Mean full-length `field` per max LR at weight decay 0 (None: a seed diverged)."""
    return {lr: (None if any(v is None for v in vs) else statistics.mean(vs))  # type: ignore
            for lr, vs in per_seed(grid, field).items()}


def full_length_best(grid: dict[str, Any]) -> tuple[list[float], dict[float, float | None]]:
    """The max LRs whose full-length runs score best by what the task is judged by, and
    every LR's score as a loss-like number (lower is better: the error rate, or the loss).
    LRs within the seeds' noise of the best tie with it: the standard error of a mean over
    the seeds, the median over the LRs (fashion_bn_small's 87.225% against 87.20% is a
    twelfth of it). One mean's error, not a difference's: a tie is a best within it."""
    field = "val_metric" if by_accuracy(grid) else "val_loss"
    seeds = {lr: [None if v is None else (1 - v if by_accuracy(grid) else v) for v in vs]
             for lr, vs in per_seed(grid, field).items()}
    scores = {lr: None if any(v is None for v in vs) else statistics.mean(vs)  # type: ignore
              for lr, vs in seeds.items()}
    errors = [statistics.stdev(vs) / math.sqrt(len(vs)) for vs in seeds.values()  # type: ignore
              if len(vs) > 1 and None not in vs]
    noise = statistics.median(errors) if errors else 0.0
    found = {lr: v for lr, v in scores.items() if v is not None}
    top = min(found.values()) if found else None
    return sorted(lr for lr, v in found.items() if v <= top + noise), scores  # type: ignore


def measure(name: str) -> dict[str, Any]:
    grid = json.loads((REFERENCE / f"{name}.json").read_text())
    task = load_task(f"zoo/{name}").loaded()
    started = time.perf_counter()
    full = full_length(grid)
    rows = []
    for fraction in FRACTIONS:
        for lr in sorted(full):
            spec = TrialSpec(f"zoo/{name}", max_lr=lr,
                             budget=Budget(epochs=task.epochs * fraction), weight_decay=0.0,
                             eval_samples=EVAL_SAMPLES, label=f"{name} lr={lr:.3g} f={fraction}")
            result, _ = train(spec, task=task)
            loss = result.val_loss if result.val_loss is not None and \
                math.isfinite(result.val_loss) else None
            verdict = result.diagnosis.verdict if result.diagnosis is not None else None
            print(f"  {name} 1/{round(1 / fraction)} lr {lr:.3g}: {loss} ({verdict})",
                  flush=True)
            rows.append({"fraction": fraction, "max_lr": lr, "val_loss": loss,
                         "val_metric": result.val_metric, "verdict": verdict})
    return {"task": name, "split": grid["split"], "full_length": {str(k): v for k, v in
                                                                 full.items()},
            "short": rows, "wall_seconds": round(time.perf_counter() - started, 1),
            **stamp(f"python benchmarks/horizon_bias.py --tasks {name} --force")}


def best(losses: dict[float, float | None]) -> float | None:
    found = {lr: v for lr, v in losses.items() if v is not None}
    return min(found, key=lambda lr: found[lr]) if found else None


def best_by_accuracy(rows: list[dict[str, Any]]) -> float | None:
    """The short runs' most accurate LR (the lower loss breaks a tie), as a classifier is
    judged; tune ranks its short runs by their loss instead."""
    found = [r for r in rows if r["val_loss"] is not None and r["val_metric"] is not None]
    if not found:
        return None
    return float(max(found, key=lambda r: (r["val_metric"], -r["val_loss"]))["max_lr"])


SCORES = {True: "accuracy", False: "validation loss"}


def table(split: str) -> list[str]:
    lines = ["| task | judged by | run length | short-run best LR | full-length best LR "
             "| bias (decades) | its full-length score |", "|---|---|---|---|---|---|---|"]
    biases: dict[bool, dict[float, list[float]]] = {
        kind: {f: [] for f in FRACTIONS} for kind in SCORES}
    names = [t.name for t in zoo.ZOO if t.split == split]
    found = 0
    for name in names:
        path = FOLDER / f"{name}.json"
        if not path.exists():
            continue
        found += 1
        data = json.loads(path.read_text())
        grid = json.loads((REFERENCE / f"{name}.json").read_text())
        kind = by_accuracy(grid)
        targets, scores = full_length_best(grid)
        for fraction in FRACTIONS:
            short = {r["max_lr"]: r["val_loss"] for r in data["short"]
                     if r["fraction"] == fraction}
            chosen = best(short)
            if chosen is None or not targets:
                continue
            bias = min((math.log10(chosen / t) for t in targets), key=abs)
            biases[kind][fraction].append(bias)
            own = scores.get(chosen)
            top = min(v for v in scores.values() if v is not None)
            if own is None:
                own_text = "diverged"
            elif kind:
                own_text = f"{1 - own:.2%} (best {1 - top:.2%})"
            else:
                own_text = f"{own / top:.3f}x the best"
            best_text = ", ".join(f"{t:.3g}" for t in targets)
            lines.append(f"| {name} | {SCORES[kind]} | 1/{round(1 / fraction)} | {chosen:.3g} "
                         f"| {best_text} | {bias:+.1f} | {own_text} |")
    summary = [f"- {split} half, {found} of {len(names)} tasks measured."]
    for kind, by_fraction in biases.items():
        medians = ", ".join(
            f"1/{round(1 / f)} of the length {statistics.median(b):+.2f}"
            for f, b in by_fraction.items() if b)
        count = len(by_fraction[FRACTIONS[0]])
        summary.append(f"- median bias (decades), {count} tasks judged by their "
                       f"{SCORES[kind]}: {medians or 'none yet'}.")
    return [*summary, "", *lines, "", *regret_table(split)]


# corrections a grid half a decade apart can tell apart; the recipe's own (0.25 decades per
# halving of the length: 0.75, 0.5, 0.25) lies on or between them
CORRECTIONS = (0.0, 0.5, 1.0)
ROWS = {True: "accuracy (validation loss)", False: "validation loss (validation loss)"}
BY_ACCURACY = "accuracy (accuracy)"


def regret_table(split: str) -> list[str]:
    """What each correction of the short-run winner would cost at full length: the winner
    lowered by c decades and snapped to the nearest grid LR, scored against the grid's best
    (accuracy points, mean over the classifiers; loss ratio, geometric mean over the others;
    a diverged LR counts as the grid's worst). The classifiers are read twice: their short
    runs ranked by validation loss, as tune ranks them, and by accuracy, as they are judged.
    Read from the files: no run of its own."""
    regrets: dict[tuple[str, float, float], list[float]] = {}
    for name in (t.name for t in zoo.ZOO if t.split == split):
        path = FOLDER / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        grid = json.loads((REFERENCE / f"{name}.json").read_text())
        kind = by_accuracy(grid)
        _, scores = full_length_best(grid)
        found = [v for v in scores.values() if v is not None]
        if not found:
            continue
        top, worst = min(found), max(found)
        for fraction in FRACTIONS:
            rows = [r for r in data["short"] if r["fraction"] == fraction]
            winners = {ROWS[kind]: best({r["max_lr"]: r["val_loss"] for r in rows})}
            if kind:
                winners[BY_ACCURACY] = best_by_accuracy(rows)
            for row, chosen in winners.items():
                if chosen is None:
                    continue
                for c in CORRECTIONS:
                    lr = min(scores, key=lambda x: abs(math.log10(x * 10**c / chosen)))
                    score = scores[lr]
                    score = worst if score is None else score
                    regrets.setdefault((row, fraction, c), []).append(
                        100 * (score - top) if kind else score / top)
    if not regrets:
        return []
    lines = ["Regret at full length of the short-run winner lowered by c decades (snapped to "
             "the grid): mean accuracy points over the classifiers, geometric-mean loss ratio "
             "over the others.", "",
             "| judged by (short runs ranked by) | run length | "
             + " | ".join(f"c = {c:g}" for c in CORRECTIONS) + " |",
             "|---|---|" + "---|" * len(CORRECTIONS)]
    for row in (ROWS[True], BY_ACCURACY, ROWS[False]):
        for fraction in FRACTIONS:
            cells = []
            for c in CORRECTIONS:
                values = regrets.get((row, fraction, c))
                if not values:
                    cells.append("-")
                elif row != ROWS[False]:
                    cells.append(f"{statistics.fmean(values):.2f} pt")
                else:
                    cells.append(f"{math.exp(statistics.fmean(map(math.log, values))):.2f}x")
            lines.append(f"| {row} | 1/{round(1 / fraction)} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    args = measure_half(__doc__.splitlines()[0], FOLDER, measure)
    lines = header("Short-horizon bias of the max LR on the zoo (horizon-bias)",
                   "make horizon-bias")
    lines += ["", "Each grid LR (weight decay 0, seed 0) trained for 1/8, 1/4 and 1/2 of the "
              "task's final length against the grid's full-length runs (mean of 2 seeds); "
              "per-task files in benchmarks/horizon_bias/. Positive bias: short runs favour "
              "a higher LR than the full length rewards. The full length is judged by what "
              "the task is scored by (accuracy for the classifiers, else the validation "
              "loss); LRs within the seeds' noise of the best (the median standard error "
              "of a mean over the seeds) tie with it, and the bias is to the nearest of "
              "them.", ""]
    for split in ("dev", "test"):
        lines += [f"### {split} half", "", *table(split), ""]
    publish(lines, args.write, "horizon-bias")


if __name__ == "__main__":
    main()
