"""The cost of a search: `disciplined tune` against Optuna's TPE and random samplers.

Optuna (the real package) searches max LR (log 1e-3..1), maximum momentum (0.85..0.99),
weight decay (log 1e-6..1e-2) and batch size (half, same, double the task's); every Optuna
trial is a full-length 1cycle training (the length tune's final training uses), scored by its
final validation accuracy. Each sampler runs for `--factor` times our total time. Reported:
the accuracy each reaches at our total time and the time Optuna needs to match our accuracy.

    make bench-search-cost
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from _common import end_of, header, publish
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from disciplined.recipe import tune
from disciplined.tasks import load_task
from disciplined.trials import Budget, TrialSpec, run_trial

MARK = "search-cost"


def ours(task: str, seed: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        s = tune(task, out=Path(tmp) / "s", seed=seed).summary
        return end_of(s["final"])[1], time.perf_counter() - start


def optuna_curve(task: str, sampler_name: str, seconds: float, seed: int,
                 batch: int) -> list[tuple[float, float]]:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=seed) if sampler_name == "TPE"
               else optuna.samplers.RandomSampler(seed=seed))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = time.perf_counter()
    curve: list[tuple[float, float]] = []

    def objective(trial: optuna.Trial) -> float:
        spec = TrialSpec(
            task, max_lr=trial.suggest_float("max_lr", 1e-3, 1.0, log=True),
            budget=Budget(epochs=load_task(task).epochs),
            momentum=(trial.suggest_float("momentum", 0.85, 0.99), 0.85),
            weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
            batch_size=trial.suggest_categorical("batch_size", [batch // 2, batch, batch * 2]),
            seed=seed, eval_every=10**9)
        result = run_trial(spec)
        accuracy = result.val_metric or 0.0
        best = max([accuracy] + [a for _, a in curve])
        curve.append((time.perf_counter() - start, best))
        return accuracy

    while time.perf_counter() - start < seconds:
        study.optimize(objective, n_trials=1)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist1d", "fashion-mnist"])
    parser.add_argument("--factor", type=float, default=6.0)
    parser.add_argument("--max-seconds", type=float, default=400.0,
                        help="cap on each sampler's time (keeps fashion-mnist to minutes)")
    parser.add_argument("--samplers", nargs="+", default=["TPE", "random"],
                        choices=["TPE", "random"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--plot-dir", type=Path, default=Path("benchmarks/plots"))
    args = parser.parse_args()
    from importlib.metadata import version

    from disciplined.tasks import load_task

    rows = []
    for task in args.tasks:
        accuracy, seconds = ours(task, args.seed)
        print(task, "ours", accuracy, seconds, flush=True)
        fig = Figure(figsize=(7, 4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ax.plot([seconds], [accuracy], "o", ms=8, label="disciplined tune (total)")
        rows.append(f"| {task} | disciplined tune | {100 * accuracy:.2f}% | {seconds:.0f} s | "
                    f"{seconds:.0f} s | 1.0x |")
        for sampler in args.samplers:
            allowed = min(args.factor * seconds, args.max_seconds)
            curve = optuna_curve(task, sampler, allowed, args.seed, load_task(task).batch_size)
            at_ours = max([a for t, a in curve if t <= seconds], default=None)
            match = next((t for t, a in curve if a >= accuracy), None)
            ax.step([t for t, _ in curve], [a for _, a in curve], where="post",
                    label=f"Optuna {sampler} (best so far)")
            shown = "no trial finished" if at_ours is None else f"{100 * at_ours:.2f}%"
            limit = curve[-1][0] / seconds
            needed = f"not within {limit:.1f}x" if match is None else f"{match:.0f} s"
            ratio = f">{limit:.1f}x" if match is None else f"{match / seconds:.1f}x"
            rows.append(f"| {task} | Optuna {sampler} ({len(curve)} trials) | {shown} | "
                        f"{curve[-1][0]:.0f} s | {needed} | {ratio} |")
            print(rows[-1], flush=True)
        ax.set_xlabel("wall seconds")
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(True, alpha=0.3)
        ax.legend()
        args.plot_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot_dir / f"search_cost_{task}.png", dpi=110)
    lengths = ", ".join(f"{t} {load_task(t).epochs} epochs" for t in args.tasks)
    lines = [
        *header("The cost of a search: tune against Optuna TPE and random",
                "make bench-search-cost", f"optuna {version('optuna')}"),
        f"- every Optuna trial: full-length 1cycle ({lengths}), "
        "the space max LR log[1e-3, 1], max momentum [0.85, 0.99], weight decay "
        f"log[1e-6, 1e-2], batch size {{b/2, b, 2b}}; each sampler ran {args.factor:g}x our "
        f"total time, at most {args.max_seconds:g} s; seed {args.seed}; plots "
        "`benchmarks/plots/search_cost_TASK.png`.",
        "- columns: accuracy reached by our total time (for Optuna: its best trial finished by "
        "then), time spent, time needed to match our accuracy, and that as a multiple of ours.",
        "",
        "| task | method | accuracy at our time | time spent | time to match ours | "
        "multiple |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
