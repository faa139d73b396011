"""How good are the hyper-parameters each procedure chooses, on the zoo, against its grid?

For each zoo task, T is the measured time of one final training (the naive default, seed 0).
The procedures, each given 3T (tight) and 10T (generous) of wall time:
- `disciplined tune --budget-minutes` (the whole recipe, default stages, seed 0);
- Optuna TPE (seeded) over the same space (max LR, maximum momentum, weight decay), each trial
  a full-length 1cycle training scored on the validation set, until the time is up;
and, costing about one training each:
- each range-test rule alone (smith: ours; steepest; min/10; valley): `find-lr`'s default
  sweep, then `train --max-lr` with the rule's value and the defaults (momentum 0.95 -> 0.85,
  weight decay 5e-4);
- the learning-rate-free optimizers, one training each at their authors' settings: Prodigy
  (lr 1, cosine annealing over the run, as its README advises) and schedule-free AdamW (lr
  2.5e-3) / SGD (lr 1), package defaults with a 5% warm-up, BatchNorm statistics recomputed at
  the averaged weights before evaluation (as the schedulefree README prescribes).

Every choice is trained again at the task's final length on the grid's seeds (0 and 1) and
scored like the grid (benchmarks/zoo_reference/), which is read, never re-run: regret in
accuracy points for classifiers, the loss ratio to the grid's best otherwise; "worse than
naive" compares with the grid file's naive default. Each task's measurements go to
benchmarks/decisions/NAME.json (kept: `--force` remeasures), so a stopped run resumes; the
tables are built from whatever files exist, the dev half's, then the test half's, in the same
form.

    make bench-decisions
    python benchmarks/bench_decisions.py --tasks tabular_mlp --force
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import header, publish
from _zoo import Run, each_task, finite, run_score, score_of, stamp, task_arguments, train_once

from disciplined import zoo
from disciplined.defaults import BASE_MOMENTUM, MOMENTUM, WEIGHT_DECAY
from disciplined.engine import Trainer, evaluate, steps_per_epoch
from disciplined.range_test import task_range_test
from disciplined.recipe import tune
from disciplined.searches import MOMENTA
from disciplined.tasks import Task, load_task

MARK = "bench-decisions"
REFERENCE = Path(__file__).with_name("zoo_reference")
OUT = Path(__file__).with_name("decisions")
SEEDS = (0, 1)
BUDGETS = {"3x": 3.0, "10x": 10.0}
RULES = ("smith", "steepest", "min/10", "valley")
NAIVE_LR = {"sgd": 1e-2, "adamw": 3e-4}
# Optuna's space: what a user would give it. Weight decay on the optimizer's own scale
# (SGD's is coupled to the gradient, AdamW's multiplied by the LR: ~100x larger).
LR_RANGE = (1e-6, 1.0)
WD_RANGE = {"sgd": (1e-6, 1e-1), "adamw": (1e-4, 10.0)}
WARMUP = 0.05  # schedule-free's warm-up, as a fraction of the run


class Retrainer:
    """Full-length trainings of chosen hyper-parameters on the grid's seeds, each trained
    once however many procedures choose it."""

    def __init__(self, task: Task, name: str) -> None:
        self.task, self.name = task, name
        self.classification = task.metric == "accuracy"
        self.cache: dict[tuple[Any, ...], Run] = {}

    def runs(self, max_lr: float, weight_decay: float, momentum: tuple[float, float],
             batch_size: int | None = None) -> list[Run]:
        out = []
        for seed in SEEDS:
            key = (f"{max_lr:.6g}", weight_decay, tuple(momentum), batch_size, seed)
            if key not in self.cache:
                self.cache[key] = train_once(self.task, self.name, max_lr, weight_decay, seed,
                                             momentum=momentum, batch_size=batch_size)
            out.append(self.cache[key])
        return out


def choice_entry(runs: list[Run], classification: bool, **extra: Any) -> dict[str, Any]:
    scores = [run_score(r, classification) for r in runs]
    return {**extra, "runs": [vars(r) for r in runs],
            "mean_score": statistics.fmean(scores) if all(map(math.isfinite, scores))
            else None}


def run_tune(name: str, seconds: float, retrain: Retrainer, seed: int = 0) -> dict[str, Any]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = tune(f"zoo/{name}", out=out, budget_minutes=seconds / 60, seed=seed)
    wall = time.perf_counter() - start
    hyper = result.summary["hyperparameters"]
    momentum = tuple(hyper["momentum"])
    runs = retrain.runs(hyper["max_lr"], hyper["weight_decay"], momentum,
                        hyper["batch_size"])
    final = result.summary["final"]
    return choice_entry(runs, retrain.classification, budget_seconds=seconds,
                        wall_seconds=round(wall, 1), choice=hyper,
                        own_final={"epochs": final["epochs"],
                                   "val_loss": finite(final["val_loss"]),
                                   "val_metric": finite(final["val_metric"]),
                                   # where the model kept an earlier evaluation's weights
                                   "kept_step": final.get("kept_step"),
                                   "end_val_loss": finite(final.get("end_val_loss")),
                                   "end_val_metric": finite(final.get("end_val_metric"))},
                        stages={s["name"]: round(s["wall_seconds"], 2)
                                for s in result.summary["stages"]},
                        tune_wall=round(result.summary["wall_seconds_total"], 2),
                        reasons={s["name"]: s["reason"] for s in result.summary["stages"]})


def run_optuna(name: str, seconds: float, retrain: Retrainer, task: Task,
               seed: int = 0) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    classification = retrain.classification
    wd_low, wd_high = WD_RANGE[task.optimizer]

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("max_lr", *LR_RANGE, log=True)
        momentum = trial.suggest_categorical("momentum", list(MOMENTA))
        wd = trial.suggest_float("weight_decay", wd_low, wd_high, log=True)
        run = train_once(task, name, lr, wd, seed, momentum=(momentum, BASE_MOMENTUM))
        score = run_score(run, classification)
        return score if math.isfinite(score) else (0.0 if classification else -1e30)

    start = time.perf_counter()
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=seconds)
    wall = time.perf_counter() - start
    best = study.best_params
    momentum = (best["momentum"], BASE_MOMENTUM)
    runs = retrain.runs(best["max_lr"], best["weight_decay"], momentum)
    return choice_entry(runs, classification, budget_seconds=seconds,
                        wall_seconds=round(wall, 1), trials=len(study.trials),
                        choice={"max_lr": best["max_lr"], "momentum": list(momentum),
                                "weight_decay": best["weight_decay"]})


def run_rules(retrain: Retrainer, task: Task, seed: int = 0) -> dict[str, dict[str, Any]]:
    start = time.perf_counter()
    result = task_range_test(task, seed=seed)
    sweep = time.perf_counter() - start
    out = {}
    for rule in RULES:
        lr = result.suggestions[rule].value
        if lr is None:
            out[f"rule {rule}"] = {"choice": None, "runs": [], "mean_score": None,
                                   "wall_seconds": round(sweep, 1),
                                   "note": "the rule gave no suggestion"}
            continue
        runs = retrain.runs(lr, WEIGHT_DECAY, MOMENTUM)
        out[f"rule {rule}"] = choice_entry(
            runs, retrain.classification, wall_seconds=round(sweep, 1),
            choice={"max_lr": lr, "momentum": list(MOMENTUM), "weight_decay": WEIGHT_DECAY})
    return out


def _lr_free(task: Task, build: Callable[[torch.nn.Module, int], tuple[Any, Any]],
             schedule_free: bool, seed: int = 0) -> dict[str, Any]:
    """One training (of `seed`) with an optimizer that needs no LR tuning."""
    train_data, val_data = task.datasets()
    steps = math.ceil((task.epochs or 1) * steps_per_epoch(train_data, task.batch_size))
    start = time.perf_counter()
    model = task.model(seed)
    optimizer, scheduler = build(model, steps)
    if schedule_free:
        optimizer.train()
    trainer = Trainer(model, optimizer, task.loss_fn, train_data, None,
                      scheduler=scheduler, metric=task.metric, batch_size=task.batch_size,
                      seed=seed)
    history = trainer.run(steps=steps)
    if schedule_free:
        optimizer.eval()  # the averaged weights, which are the ones to evaluate
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            model.train()
            with torch.no_grad():
                for _ in range(min(50, steps)):
                    model(trainer.batches.next()[0])
    loss, metric = evaluate(model, val_data, task.loss_fn, task.metric, trainer.device)
    diverged = history.stop_reason == "diverged" or finite(loss) is None
    classification = task.metric == "accuracy"
    score = score_of(None if diverged else finite(loss), metric, classification)
    return {"wall_seconds": round(time.perf_counter() - start, 1),
            "runs": [{"seed": seed, "val_loss": finite(loss),
                      "val_metric": None if diverged else metric, "diverged": diverged}],
            "mean_score": score if math.isfinite(score) else None}


def run_prodigy(task: Task, seed: int = 0) -> dict[str, Any]:
    from prodigyopt import Prodigy

    def build(model: torch.nn.Module, steps: int) -> tuple[Any, Any]:
        opt = Prodigy(model.parameters(), lr=1.0)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    return {**_lr_free(task, build, schedule_free=False, seed=seed),
            "choice": {"optimizer": "Prodigy", "lr": 1.0, "schedule": "cosine"}}


def run_schedule_free(task: Task, seed: int = 0) -> dict[str, Any]:
    import schedulefree

    def build(model: torch.nn.Module, steps: int) -> tuple[Any, None]:
        warmup = int(WARMUP * steps)
        if task.optimizer == "adamw":
            return schedulefree.AdamWScheduleFree(model.parameters(),
                                                  warmup_steps=warmup), None
        return schedulefree.SGDScheduleFree(model.parameters(), warmup_steps=warmup), None

    kind = "AdamWScheduleFree" if task.optimizer == "adamw" else "SGDScheduleFree"
    return {**_lr_free(task, build, schedule_free=True, seed=seed),
            "choice": {"optimizer": kind, "lr": "default", "warmup": WARMUP}}


def attempt(procedure: Callable[[], dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A procedure's entry, or, when it raised, the error as its result (it counts as failed:
    a user would have got nothing from it)."""
    start = time.perf_counter()
    try:
        return procedure()
    except Exception as err:  # a crash is a measurement here
        print(f"  failed: {type(err).__name__}: {err}", flush=True)
        return {**extra, "error": f"{type(err).__name__}: {err}", "runs": [],
                "mean_score": None,
                "wall_seconds": round(time.perf_counter() - start, 1)}


def final_training_seconds(task: Task, name: str) -> tuple[float, str]:
    """T, one final training's seconds on this machine now, and how it was timed: the faster
    of two naive trainings (the first in a process pays torch's warm-up, ~2x on the fastest
    tasks); where the naive default diverges (it stops early: its seconds are no
    training's), the faster of two 1cycle trainings at the grid's best cell."""
    task.datasets()  # made once per process: not part of a training's time
    how = "the naive default"
    runs = [train_once(task, name, NAIVE_LR[task.optimizer], 0.0, seed, policy="constant",
                       momentum=(0.9, 0.9)) for seed in SEEDS]
    if any(run.diverged for run in runs):
        best = json.loads((REFERENCE / f"{name}.json").read_text())["best"]
        how = "the grid's best cell (the naive default diverges)"
        runs = [train_once(task, name, best["max_lr"], best["weight_decay"], seed)
                for seed in SEEDS]
    seconds = min(run.seconds for run in runs)
    print(f"{name}: one final training takes {seconds:.1f} s ({how})", flush=True)
    return seconds, how


def measure(name: str) -> dict[str, Any]:
    entry = next(t for t in zoo.ZOO if t.name == name)
    task = load_task(f"zoo/{name}")
    retrain = Retrainer(task, name)
    started = time.perf_counter()
    seconds, _ = final_training_seconds(task, name)
    procedures: dict[str, dict[str, Any]] = {}
    for label, factor in BUDGETS.items():
        print(f"{name}: tune at {label}", flush=True)
        procedures[f"tune {label}"] = attempt(
            lambda f=factor: run_tune(name, f * seconds, retrain),
            budget_seconds=factor * seconds)
        print(f"{name}: optuna at {label}", flush=True)
        procedures[f"optuna {label}"] = attempt(
            lambda f=factor: run_optuna(name, f * seconds, retrain, task),
            budget_seconds=factor * seconds)
    print(f"{name}: range-test rules", flush=True)
    rules = attempt(lambda: run_rules(retrain, task))
    procedures.update({f"rule {r}": rules for r in RULES} if "error" in rules else rules)
    print(f"{name}: learning-rate-free optimizers", flush=True)
    procedures["prodigy"] = attempt(lambda: run_prodigy(task))
    procedures["schedule-free"] = attempt(lambda: run_schedule_free(task))
    return {
        "task": name, "split": entry.split, "kind": entry.kind, "optimizer": task.optimizer,
        "final_training_seconds": seconds, "procedures": procedures,
        "wall_seconds": round(time.perf_counter() - started, 1),
        **stamp(f"python benchmarks/bench_decisions.py --tasks {name} --force"),
    }


def remeasure(name: str) -> dict[str, Any]:
    """Measure `tune` again on a task already measured (after a change to the library), at
    3x and 10x of T timed again now: the machine's speed drifts between days (on 2026-12-02
    the zoo's trainings ran ~1.4x faster than when first measured), and a budget is a
    number of final trainings on the machine at hand. Each entry keeps the T it was given;
    the earlier entries stay, as "tune 3x (before)"..."""
    path = OUT / f"{name}.json"
    data = json.loads(path.read_text())
    task = load_task(f"zoo/{name}")
    retrain = Retrainer(task, name)
    seconds, how = final_training_seconds(task, name)
    procedures = dict(data["procedures"])
    for label, factor in BUDGETS.items():
        key = f"tune {label}"
        procedures.setdefault(f"{key} (before)", procedures[key])
        print(f"{name}: tune at {label} ({factor * seconds:.0f} s)", flush=True)
        procedures[key] = {**attempt(lambda f=factor: run_tune(name, f * seconds, retrain),
                                     budget_seconds=factor * seconds),
                           "library": library_commit(), "final_training_seconds": seconds,
                           "final_training_seconds_from": how}
    return {**data, "procedures": procedures}


def measured(name: str) -> tuple[dict[str, Any], Task, Retrainer, float]:
    """A task's file to add draws to, its task, a retrainer and when this began; the task
    must have been measured first."""
    path = OUT / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"{name}: no {path} to add seeds to; measure the task first "
                         f"(python benchmarks/bench_decisions.py --tasks {name})")
    task = load_task(f"zoo/{name}")
    return json.loads(path.read_text()), task, Retrainer(task, name), time.perf_counter()


def more_seeds(name: str, seeds: tuple[int, ...],
               budgets: tuple[str, ...] = tuple(BUDGETS)) -> dict[str, Any]:
    """Measure `tune` again with other seeds, at 3x and 10x of T (or `budgets`) timed again
    now, on a task already measured. One run of `tune` is one draw: its seed moves the
    short runs, and the budget, read from the clock, moves its plan (on 2026-12-02 a budget
    5% smaller changed a test task's LR plan and its score from 0.89x to 29.7x). A rule
    change is judged against this spread, not against one draw. Stored under "tune_seeds",
    one entry per budget, seed and library commit."""
    data, task, retrain, started = measured(name)
    seconds, how = final_training_seconds(task, name)
    draws = dict(data.get("tune_seeds", {}))
    library = library_commit()
    for seed in seeds:
        for label in budgets:
            factor = BUDGETS[label]
            print(f"{name}: tune at {label} ({factor * seconds:.0f} s), seed {seed}", flush=True)
            draws[f"{label} seed {seed} {library}"] = {
                **attempt(lambda f=factor, s=seed: run_tune(name, f * seconds, retrain, s),
                          budget_seconds=factor * seconds),
                "seed": seed, "budget": label, "library": library,
                "final_training_seconds": seconds, "final_training_seconds_from": how}
    print(f"{name}: seeds {', '.join(map(str, seeds))} in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return {**data, "tune_seeds": draws}



PEERS = ("optuna 3x", "optuna 10x", *(f"rule {r}" for r in RULES), "prodigy", "schedule-free")


def more_peers(name: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    """Measure the peers again with other seeds, on a task already measured: Optuna (its
    sampler and its trials' weights seeded so) at 3x and 10x of T timed again now, each
    range-test rule from a sweep of that seed, Prodigy and schedule-free from weights of
    that seed. `tune` is judged over its seeds (`--tune-seeds`); a peer's single draw is
    no fairer a comparison. Stored under "peer_seeds", one entry per procedure and seed."""
    data, task, retrain, started = measured(name)
    seconds, how = final_training_seconds(task, name)
    draws = dict(data.get("peer_seeds", {}))
    for seed in seeds:
        got: dict[str, dict[str, Any]] = {}
        for label, factor in BUDGETS.items():
            print(f"{name}: optuna at {label} ({factor * seconds:.0f} s), seed {seed}",
                  flush=True)
            got[f"optuna {label}"] = attempt(
                lambda f=factor, s=seed: run_optuna(name, f * seconds, retrain, task, s),
                budget_seconds=factor * seconds)
        print(f"{name}: range-test rules and learning-rate-free optimizers, seed {seed}",
              flush=True)
        rules = attempt(lambda s=seed: run_rules(retrain, task, s))
        got.update({f"rule {r}": rules for r in RULES} if "error" in rules else rules)
        got["prodigy"] = attempt(lambda s=seed: run_prodigy(task, s))
        got["schedule-free"] = attempt(lambda s=seed: run_schedule_free(task, s))
        for proc, entry in got.items():
            draws[f"{proc} seed {seed}"] = {**entry, "procedure": proc, "seed": seed,
                                            "final_training_seconds": seconds,
                                            "final_training_seconds_from": how}
    print(f"{name}: peers, seeds {', '.join(map(str, seeds))} in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return {**data, "peer_seeds": draws}


def rules_again(name: str) -> dict[str, Any]:
    """Read each stored range-test rule draw again (seed 0 in "procedures", the others in
    "peer_seeds") from a sweep of its seed, with the rules of the library at hand: where a
    rule's suggestion moved, its runs are trained again and the entry replaced, keeping the
    earlier max LR and score under "before"; where it did not, the entry stays as it was.
    Made for a change to the rules alone (2026-12-04: they now leave the sweep's first
    points unread, as the peers' own suggestions do). Smith's rule read its part so before:
    where its suggestion moves, the entry was read by an older library (or the sweep did not
    reproduce), and it is replaced like the others."""
    data, task, retrain, started = measured(name)
    procedures, draws = dict(data["procedures"]), dict(data.get("peer_seeds", {}))
    seeds = sorted({0, *(e["seed"] for e in draws.values() if e["procedure"] in
                         {f"rule {r}" for r in RULES})})
    for seed in seeds:
        result = task_range_test(task, seed=seed)
        for rule in RULES:
            key = f"rule {rule}" if seed == 0 else f"rule {rule} seed {seed}"
            store = procedures if seed == 0 else draws
            old = store.get(key)
            new = result.suggestions[rule].value
            was = None if old is None or not old.get("choice") else old["choice"]["max_lr"]
            same = new is None if was is None else \
                new is not None and math.isclose(new, was, rel_tol=1e-9)
            if same:
                continue
            if rule == "smith":  # the trim did not change its reading: something else did
                print(f"{name}: seed {seed}: Smith's reading moved ({was} -> {new}): the entry "
                      "was read by an older library, or the sweep did not reproduce", flush=True)
            wall = old.get("wall_seconds") if old else None
            if new is None:
                entry = {"choice": None, "runs": [], "mean_score": None, "wall_seconds": wall,
                         "note": "the rule gave no suggestion"}
            else:
                entry = choice_entry(retrain.runs(new, WEIGHT_DECAY, MOMENTUM),
                                     retrain.classification, wall_seconds=wall, choice={
                                         "max_lr": new, "momentum": list(MOMENTUM),
                                         "weight_decay": WEIGHT_DECAY})
            entry["before"] = {"max_lr": was, "mean_score": old.get("mean_score") if old
                               else None, "library": "as stored before this re-read"}
            if seed != 0:
                entry = {**entry, "procedure": f"rule {rule}", "seed": seed,
                         **{k: old[k] for k in ("final_training_seconds",
                                                "final_training_seconds_from") if old and k in old}}
            store[key] = entry
            print(f"{name}: rule {rule} seed {seed}: max LR {was} -> {new}, score "
                  f"{None if old is None else old.get('mean_score')} -> "
                  f"{entry['mean_score']}", flush=True)
    print(f"{name}: rules read again in {time.perf_counter() - started:.0f} s", flush=True)
    return {**data, "procedures": procedures, "peer_seeds": draws}


@functools.cache
def library_commit() -> str:
    """The last commit that changed the library, '+' when its working tree differed: read
    once, when main() starts, as the library this process imported (edits made while it
    runs are not in its measurements; a process-wide cache is fine in a script)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()

    dirty = git("status", "--porcelain", "--", "../src")
    return git("log", "-1", "--format=%h", "--", "../src") + ("+" if dirty else "")


# --- the tables ------------------------------------------------------------------------------


def gap(score: float | None, best: float, classification: bool) -> float | None:
    """Regret in accuracy points (classifiers), else the loss ratio to the grid's best."""
    if score is None:
        return None
    return 100 * (best - score) if classification else (-score) / (-best)


def fmt_gap(value: float | None, classification: bool) -> str:
    if value is None:
        return "failed"
    return f"{value:+.1f} pt" if classification else f"{value:.2f}x"


def worst_cell(grid: dict[str, Any], classification: bool) -> float:
    """The grid's worst finite cell (mean over seeds): what a failed or diverged choice is
    counted as, so that failing never improves a procedure's mean."""
    cells: dict[tuple[float, float], list[float]] = {}
    for run in grid["runs"]:
        score = score_of(None if run["diverged"] else run["val_loss"], run["val_metric"],
                         classification)
        cells.setdefault((run["max_lr"], run["weight_decay"]), []).append(score)
    return min(statistics.fmean(v) for v in cells.values() if all(map(math.isfinite, v)))


def judged(entry: dict[str, Any], grid: dict[str, Any]) -> tuple[float, bool, bool]:
    """An entry's gap to the grid's best, whether it ends worse than the naive default, and
    whether it failed (then scored as the grid's worst cell, so failing never helps)."""
    classification = grid["score"] == "val_accuracy"
    naive = grid["naive"]["mean_score"]  # None (or -inf in early files): it diverged
    naive = -math.inf if naive is None else naive
    failed = entry["mean_score"] is None
    score = worst_cell(grid, classification) if failed else entry["mean_score"]
    g = gap(score, grid["best"]["mean_score"], classification)
    assert g is not None
    return g, math.isfinite(naive) and score < naive, failed


def seed_tables(split: str) -> list[str]:
    """`tune` over its seeds, one table per library commit measured with --tune-seeds; a
    library measured there without seed 0 takes the seed-0 columns above as its seed 0."""
    names = [t.name for t in zoo.ZOO if t.split == split]
    files = {n: json.loads((OUT / f"{n}.json").read_text()) for n in names
             if (OUT / f"{n}.json").exists() and (REFERENCE / f"{n}.json").exists()}
    libraries: list[str] = []
    for data in files.values():
        for draw in data.get("tune_seeds", {}).values():
            if draw["library"] not in libraries:
                libraries.append(draw["library"])
    lines: list[str] = []
    for library in libraries:
        lines += _seed_table(split, library, {
            name: data for name, data in files.items()
            if any(d["library"] == library for d in data.get("tune_seeds", {}).values())},
            len(names))
    return lines


def _seed_table(split: str, library: str, files: dict[str, dict[str, Any]],
                of: int) -> list[str]:
    """The table of one library's draws: a row per task with each seed's regret and their
    spread, then a summary by seed and over all seeds."""
    rows: list[str] = []
    per_seed: dict[tuple[str, int], list[tuple[float, bool, bool, float]]] = {}
    seeds: list[int] = []
    borrowed: set[str] = set()
    measured = [b for b in BUDGETS if any(d["budget"] == b and d["library"] == library
                                          for data in files.values()
                                          for d in data["tune_seeds"].values())]
    for name, data in files.items():
        grid = json.loads((REFERENCE / f"{name}.json").read_text())
        classification = grid["score"] == "val_accuracy"
        cells = []
        for label in measured:
            draws = {d["seed"]: d for d in data["tune_seeds"].values()
                     if d["budget"] == label and d["library"] == library}
            if not draws:  # not measured at this budget with this library
                cells.append("-")
                continue
            if 0 not in draws:
                draws[0] = data["procedures"][f"tune {label}"]
                borrowed.add(draws[0].get("library", "as first measured"))
            shown, gaps = [], []
            for seed, entry in sorted(draws.items()):
                seeds += [seed] if seed not in seeds else []
                g, worse, failed = judged(entry, grid)
                gaps.append(g)
                per_seed.setdefault((label, seed), []).append(
                    (g, classification, worse, entry["wall_seconds"] / entry["budget_seconds"]))
                shown.append(("failed" if failed else fmt_gap(g, classification))
                             + (" *" if worse else ""))
            spread = (f"{max(gaps) - min(gaps):.1f} pt" if classification
                      else f"{max(gaps) / min(gaps):.2f}x")
            cells.append(" / ".join(shown) + f" (spread {spread})")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    seeds.sort()
    zero = "" if not borrowed else (
        f"; seed 0 is the column above (library {', '.join(sorted(borrowed))}, as measured "
        "there)")
    lines = ["", f"`tune` at library {library} over seeds {', '.join(map(str, seeds))} "
             f"({len(files)} of {of} {split} tasks; each draw at {' and '.join(measured)} of T "
             f"timed again when it ran, `--tune-seeds`{zero}): regret of each seed's choice "
             "(retrained on seeds 0 and 1 like every choice), and the spread between the best "
             "and the worst seed (points, or the ratio of loss ratios); * = worse than the "
             "naive default.",
             "", "| task | " + " | ".join(f"tune {b} by seed" for b in measured) + " |",
             "|---" * (len(measured) + 1) + "|", *rows, "",
             "By seed, and over all seeds: mean regret over classifiers, geometric-mean loss "
             "ratio over the others, tasks worse than the naive default, wall time against "
             "the budget (min, median, max).", "",
             "| budget | seed | mean regret (pt) | loss ratio | worse than naive | "
             "wall / budget |", "|---|---|---|---|---|---|"]
    for label in measured:
        pooled: list[tuple[float, bool, bool, float]] = []
        for seed in seeds:
            entries = per_seed.get((label, seed), [])
            pooled += entries
            if entries:
                lines.append(_seed_row(label, str(seed), entries))
        lines.append(_seed_row(label, "all", pooled))
    return lines


def _seed_row(label: str, seed: str, entries: list[tuple[float, bool, bool, float]]) -> str:
    """One summary line: (gap, classifier?, worse than naive?, wall / budget) per task."""
    points = [g for g, c, _, _ in entries if c]
    ratios = [g for g, c, _, _ in entries if not c]
    over = [o for *_, o in entries]
    return (f"| {label} | {seed} | "
            + (f"{statistics.fmean(points):.1f}" if points else "-") + " | "
            + (f"{math.exp(statistics.fmean(map(math.log, ratios))):.2f}x" if ratios else "-")
            + f" | {sum(w for _, _, w, _ in entries)}/{len(entries)} | "
            f"{min(over):.2f}x, {statistics.median(over):.2f}x, {max(over):.2f}x |")


def peer_table(split: str) -> list[str]:
    """`tune` and each peer over the same seeds, pooled: the tasks measured with
    --peer-seeds, each procedure's seed 0 the columns above, `tune`'s draws those of the
    last library measured at that budget on the task (`--tune-seeds`)."""
    names = [t.name for t in zoo.ZOO if t.split == split]
    files = {n: json.loads((OUT / f"{n}.json").read_text()) for n in names
             if (OUT / f"{n}.json").exists() and (REFERENCE / f"{n}.json").exists()}
    files = {n: d for n, d in files.items() if d.get("peer_seeds")}
    if not files:
        return []
    pooled: dict[str, list[tuple[int, float, bool, bool, bool]]] = {}
    libraries: dict[str, set[str]] = {}
    for name, data in files.items():
        grid = json.loads((REFERENCE / f"{name}.json").read_text())
        classification = grid["score"] == "val_accuracy"
        seeds = sorted({d["seed"] for d in data["peer_seeds"].values()} | {0})
        draws: dict[str, dict[int, dict[str, Any]]] = {
            proc: {0: data["procedures"][proc]} for proc in PEERS}
        for entry in data["peer_seeds"].values():
            draws[entry["procedure"]][entry["seed"]] = entry
        for label in BUDGETS:
            tuned = [d for d in data.get("tune_seeds", {}).values() if d["budget"] == label]
            if not tuned:
                continue
            last = tuned[-1]["library"]
            mine = {d["seed"]: d for d in tuned if d["library"] == last}
            mine.setdefault(0, data["procedures"][f"tune {label}"])
            libraries.setdefault(label, set()).add(last)
            draws[f"tune {label}"] = mine
        for proc, by_seed in draws.items():
            for seed in seeds:
                if seed in by_seed:
                    g, worse, failed = judged(by_seed[seed], grid)
                    pooled.setdefault(proc, []).append((seed, g, classification, worse, failed))
    order = [p for label in BUDGETS for p in (f"tune {label}", f"optuna {label}")] + \
        [p for p in PEERS if not p.startswith("optuna")]
    lines = ["", f"`tune` against the peers over seeds ({len(files)} of {len(names)} {split} "
             "tasks, `--peer-seeds`): every draw's choice retrained on seeds 0 and 1 and "
             "judged like the columns above; seed 0 of each peer is the column above; "
             "`tune`'s draws are those of library "
             + "; ".join(f"{label}: {', '.join(sorted(libs))}"
                         for label, libs in libraries.items())
             + " (`--tune-seeds`, seed 0 from the column above where that library has none). "
             "Mean regret over classifiers by seed and pooled, geometric-mean loss ratio over "
             "the others pooled, draws worse than the naive default, and failed draws "
             "(scored as the grid's worst cell).", "",
             "| procedure | seeds | mean regret (pt) by seed | pooled | loss ratio pooled | "
             "worse than naive | failed |", "|---|---|---|---|---|---|---|"]
    for proc in order:
        entries = pooled.get(proc)
        if not entries:
            continue
        seeds = sorted({e[0] for e in entries})
        by_seed = []
        for seed in seeds:
            points = [g for s, g, c, _, _ in entries if s == seed and c]
            by_seed.append(f"{statistics.fmean(points):.1f}" if points else "-")
        points = [g for _, g, c, _, _ in entries if c]
        ratios = [g for _, g, c, _, _ in entries if not c]
        lines.append(
            f"| {proc} | {', '.join(map(str, seeds))} | {' / '.join(by_seed)} | "
            + (f"{statistics.fmean(points):.1f}" if points else "-") + " | "
            + (f"{math.exp(statistics.fmean(map(math.log, ratios))):.2f}x" if ratios else "-")
            + f" | {sum(e[3] for e in entries)}/{len(entries)} | "
            f"{sum(e[4] for e in entries)} |")
    return lines

def tables(split: str) -> list[str]:
    rows, own_rows, per_procedure = [], [], {}
    names = [t.name for t in zoo.ZOO if t.split == split]
    found = [n for n in names if (OUT / f"{n}.json").exists()
             and (REFERENCE / f"{n}.json").exists()]
    if not found:
        return [f"No task of the {split} half has both a grid and a measurement yet."]
    procedures: list[str] = []
    for name in found:  # every procedure any task has, "(before)" ones beside their successor
        for proc in json.loads((OUT / f"{name}.json").read_text())["procedures"]:
            if proc not in procedures:
                procedures.append(proc)
    base = [k for k in procedures if not k.endswith(" (before)")]
    procedures.sort(key=lambda p: base.index(p.removesuffix(" (before)")))
    for name in found:
        data = json.loads((OUT / f"{name}.json").read_text())
        grid = json.loads((REFERENCE / f"{name}.json").read_text())
        classification = grid["score"] == "val_accuracy"
        best = grid["best"]["mean_score"]
        naive = grid["naive"]["mean_score"]  # None (or -inf in early files): it diverged
        naive = -math.inf if naive is None else naive
        cells = []
        for proc in procedures:
            entry = data["procedures"].get(proc)
            if entry is None:
                cells.append("-")
                continue
            g, worse, failed = judged(entry, grid)
            per_procedure.setdefault(proc, []).append((g, classification, worse, failed, entry))
            cells.append(("failed" if failed else fmt_gap(g, classification))
                         + (" *" if worse else ""))
        shown_naive = fmt_gap(gap(naive, best, classification), classification) \
            if math.isfinite(naive) else "diverged"
        rows.append(f"| {name} | {shown_naive} | " + " | ".join(cells) + " |")
        own = []
        for label in BUDGETS:
            final = data["procedures"][f"tune {label}"].get("own_final")
            if final is None:
                own.append("failed")
                continue
            score = score_of(final["val_loss"], final["val_metric"], classification)
            entry = data["procedures"][f"tune {label}"]
            own.append(f"{fmt_gap(gap(score, best, classification), classification)} "
                       f"({final['epochs']:.3g} epochs; {entry['wall_seconds']:.0f} s of "
                       f"{entry['budget_seconds']:.0f} s)")
        own_rows.append(f"| {name} | {grid['epochs']:g} | " + " | ".join(own) + " |")
    lines = [f"Per task ({len(found)} of {len(names)} {split} tasks): regret against the grid's "
             "best (accuracy points, or loss ratio), each choice retrained at the task's length "
             "on seeds 0 and 1; * = worse than the naive default; failed = the procedure "
             "raised or its choice diverged (counted as the grid's worst cell in the means).",
             "", "| task | naive | " + " | ".join(procedures) + " |",
             "|---" * (len(procedures) + 2) + "|", *rows, "",
             "What `tune` itself delivered (its own final training, seed 0, at the length its "
             "budget plan chose), against the same grid, and its wall time against its "
             "budget (--budget-minutes):", "",
             "| task | task's epochs | " + " | ".join(f"tune {b} own final" for b in BUDGETS)
             + " |", "|---|---|" + "---|" * len(BUDGETS), *own_rows, "",
             "Summary: mean regret over classifiers (points), geometric-mean loss ratio over the "
             "others, how many tasks end worse than the naive default, and wall time against "
             "the budget (min, median, max).", "",
             "| procedure | mean regret (pt) | loss ratio | worse than naive | wall / budget |",
             "|---|---|---|---|---|"]
    for proc in procedures:
        entries = per_procedure.get(proc, [])
        if not entries:
            continue
        points = [g for g, c, *_ in entries if c]
        ratios = [g for g, c, *_ in entries if not c]
        failed = sum(f for *_, f, _ in entries)
        worse = sum(w for _, _, w, _, _ in entries)
        over = [e["wall_seconds"] / e["budget_seconds"] for *_, e in entries
                if "budget_seconds" in e]
        line = f"| {proc} | " + (f"{statistics.fmean(points):.1f}" if points else "-")
        line += (f" | {math.exp(statistics.fmean(map(math.log, ratios))):.2f}x"
                 if ratios else " | -")
        line += f" | {worse}/{len(entries)}" + (f" ({failed} failed)" if failed else "")
        line += (f" | {min(over):.2f}x, {statistics.median(over):.2f}x, {max(over):.2f}x |"
                 if over
                 else " | - |")
        lines.append(line)
    return lines


def seed_list(text: str) -> tuple[int, ...]:
    """--tune-seeds: comma-separated seeds, each once, in the order given."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers separated by commas, got "
                                         f"{text!r}") from None
    return tuple(dict.fromkeys(seeds))


def budget_list(text: str) -> tuple[str, ...]:
    """--budgets: comma-separated names from BUDGETS, each once."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",")))
    unknown = [n for n in names if n not in BUDGETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown budget {', '.join(unknown)}: choose from "
                                         f"{', '.join(BUDGETS)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    task_arguments(parser)
    parser.add_argument("--write", type=Path, help="put the tables into this RESULTS.md")
    parser.add_argument("--tune-seeds", type=seed_list,
                        help="measure only tune again with these seeds (e.g. 1,2) on tasks "
                             "already measured, beside seed 0")
    parser.add_argument("--budgets", type=budget_list, default=tuple(BUDGETS),
                        help="with --tune-seeds: only these budgets (e.g. 10x)")
    parser.add_argument("--peer-seeds", type=seed_list,
                        help="measure only the peers (Optuna, the range-test rules, Prodigy, "
                             "schedule-free) again with these seeds (e.g. 1,2) on tasks "
                             "already measured, beside seed 0")
    parser.add_argument("--rules-again", action="store_true",
                        help="read the range-test rules again on every stored seed; train "
                             "again only the suggestions that moved")
    parser.add_argument("--remeasure-tune", action="store_true",
                        help="measure only tune again on tasks already measured, keeping the "
                             "earlier results as 'tune 3x (before)' and so on")
    args = parser.parse_args()
    library_commit()  # the library as imported, before any later edit
    if sum(map(bool, (args.remeasure_tune, args.tune_seeds, args.peer_seeds,
                      args.rules_again))) > 1:
        parser.error("--remeasure-tune, --tune-seeds, --peer-seeds and --rules-again are "
                     "separate runs: give one")
    if args.budgets != tuple(BUDGETS) and not args.tune_seeds:
        parser.error("--budgets applies to --tune-seeds runs only")
    compute = remeasure if args.remeasure_tune else measure
    if args.tune_seeds:
        compute = functools.partial(more_seeds, seeds=args.tune_seeds, budgets=args.budgets)
    if args.peer_seeds:
        compute = functools.partial(more_peers, seeds=args.peer_seeds)
    if args.rules_again:
        compute = rules_again
    again = args.remeasure_tune or args.tune_seeds or args.peer_seeds or args.rules_again
    if again:
        args.force = True
    for _, data in each_task(args, OUT, compute):
        if not again:
            print(f"{data['task']}: done in {data['wall_seconds']:.0f} s", flush=True)
    lines = header("Decisions on the zoo against its reference grids (bench-decisions)",
                   "make bench-decisions", "optuna 5.0.0, prodigyopt 1.1.2, schedulefree 1.4.1")
    lines += ["", "Each task's measurement has its own date, machine and command in "
              "benchmarks/decisions/NAME.json; the grids in benchmarks/zoo_reference/. Columns "
              "marked (before) are `tune` as it was measured first (library 918b3fa, section "
              "bench-decisions-before-13); the unmarked `tune` columns of a task that has them "
              "were measured again (`--remeasure-tune`) at the library commit its entries "
              "name under `library`, at 3x and 10x of T timed again that day where the entry "
              "names its own `final_training_seconds` (the machine's speed drifts between "
              "days; before, at the T of the first measurement). A half without (before) "
              "columns was not measured again.",
              ""]
    for split in ("dev", "test"):
        lines += ["", f"### {split} half", "", *tables(split), *seed_tables(split),
                  *peer_table(split)]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
