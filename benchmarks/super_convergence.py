"""Super-convergence on Fashion-MNIST with Caffe's LeNet: Caffe's own solver against
`disciplined tune` + its 1cycle training, one after the other on an otherwise idle machine.

Baseline (the paper's MNIST baseline): SGD lr 0.01, momentum 0.9, weight decay 5e-4, Caffe's
`inv` policy (gamma 1e-4, power 0.75), batch 64, 85 epochs. Ours: `tune("fashion-mnist",
budget_epochs=E)` (default E=12, the paper's 1cycle length), tuning time included.

    make bench-super-convergence     (~12 minutes on 2 cores; ~35 with the baseline)

The baseline does not change between library versions, so its curve is kept in
benchmarks/super_convergence/ (with the date, machine and torch it was measured on) and only
tune runs again; `--rerun-baseline` measures it again, as a new machine or torch calls for.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import torch
from _common import cpu_model, header, publish
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from disciplined import HyperScheduler, schedules
from disciplined.engine import Trainer
from disciplined.recipe import tune
from disciplined.tasks import load_task

MARK = "super-convergence"
BASE = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "gamma": 1e-4, "power": 0.75,
        "batch_size": 64}
CACHE = Path(__file__).parent / "super_convergence"


def baseline(epochs: int, seed: int) -> dict:
    task = load_task("fashion-mnist")
    train, val = task.datasets()
    torch.manual_seed(seed)
    model = task.model()
    opt = torch.optim.SGD(model.parameters(), lr=BASE["lr"], momentum=BASE["momentum"],
                          weight_decay=BASE["weight_decay"])
    caffe_inv = schedules.inv(BASE["lr"], BASE["gamma"], BASE["power"])
    trainer = Trainer(model, opt, task.loss_fn, train, val, batch_size=BASE["batch_size"],
                      seed=seed, device="cpu", scheduler=HyperScheduler(opt, lr=caffe_inv))
    start = time.perf_counter()
    accs, times = [], []
    for _ in range(epochs):
        h = trainer.run(epochs=1)
        accs.append(h.val_metric[-1])
        times.append(time.perf_counter() - start)
        print(f"baseline epoch {len(accs)}: {accs[-1]:.4f} at {times[-1]:.0f} s", flush=True)
    return {"acc": accs, "time": times}


def cached_baseline(epochs: int, seed: int, rerun: bool) -> dict:
    """The baseline's curve from its cache when it was measured with these settings and this
    torch, else measured now (and cached). Its wall times belong to the day it was measured."""
    path = CACHE / f"baseline_{epochs}_epochs_seed_{seed}.json"
    key = {"base": BASE, "epochs": epochs, "seed": seed, "torch": torch.__version__}
    if path.exists() and not rerun:
        stored = json.loads(path.read_text())
        if stored["key"] == key:
            print(f"baseline from {path} (measured {stored['date']})", flush=True)
            return stored
        print(f"{path} was measured with other settings: measuring again", flush=True)
    measured = {**baseline(epochs, seed), "key": key,
                "date": datetime.date.today().isoformat(), "machine": cpu_model()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(measured, indent=1) + "\n")
    return measured


def ours(epochs: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = tune("fashion-mnist", out=Path(tmp) / "study", budget_epochs=epochs, seed=seed)
        total = time.perf_counter() - start
        final = json.loads((Path(tmp) / "study" / "summary.json").read_text())
        from disciplined.study import Study

        with Study(Path(tmp) / "study", resume=True) as study:
            h = study.trials("final")[-1].history
    spe = len(h.step) / final["hyperparameters"]["epochs"]
    tuning = total - final["final"]["wall_seconds"]
    epochs_at = [s / spe for s in h.eval_step]
    times_at = [tuning + t for t in h.eval_seconds]
    return {"acc": h.val_metric, "epoch": epochs_at, "time": times_at, "tuning": tuning,
            "total": total, "hp": result.summary["hyperparameters"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-epochs", type=int, default=85)
    parser.add_argument("--epochs", type=float, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rerun-baseline", action="store_true",
                        help="measure the baseline again instead of reading its cache")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/plots/super_convergence.png"))
    args = parser.parse_args()
    base = cached_baseline(args.baseline_epochs, args.seed, args.rerun_baseline)
    mine = ours(args.epochs, args.seed)
    target = base["acc"][-1]
    reach = next((e for e, a in zip(mine["epoch"], mine["acc"], strict=True) if a >= target),
                 None)
    reach_base = next(i + 1 for i, a in enumerate(base["acc"]) if a >= target)

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(range(1, len(base["acc"]) + 1), base["acc"], label="Caffe inv baseline")
    ax1.plot(mine["epoch"], mine["acc"], "o-", ms=3, label="disciplined tune + 1cycle")
    ax1.set_xlabel("epoch (final training)")
    ax2.plot(base["time"], base["acc"], label="Caffe inv baseline")
    ax2.plot(mine["time"], mine["acc"], "o-", ms=3, label="ours (tuning time included)")
    ax2.set_xlabel("wall seconds")
    for ax in (ax1, ax2):
        ax.set_ylabel("validation accuracy")
        ax.set_ylim(0.8, 0.95)
        ax.grid(True, alpha=0.3)
        ax.legend()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)

    reach_text = "not reached" if reach is None else f"{reach:.1f}"
    met = reach is not None and reach <= args.baseline_epochs / 7 and mine["acc"][-1] > target
    lines = [
        *header("Super-convergence: Fashion-MNIST, Caffe's LeNet",
                "make bench-super-convergence"),
        f"- baseline: SGD lr {BASE['lr']}, momentum {BASE['momentum']}, wd "
        f"{BASE['weight_decay']}, inv (gamma {BASE['gamma']}, power {BASE['power']}), batch "
        f"{BASE['batch_size']}, {args.baseline_epochs} epochs (measured {base['date']} on "
        f"{base['machine']}; its curve is cached); ours: `tune('fashion-mnist', "
        f"budget_epochs={args.epochs:g})` chose {mine['hp']}; seed {args.seed}; accuracy on "
        "the 10,000 test images.",
        f"- plot: `{args.plot}`",
        "",
        "| run | final accuracy | epochs | wall time | epochs to the baseline's final "
        "accuracy |",
        "|---|---:|---:|---:|---:|",
        f"| Caffe inv baseline | {100 * target:.2f}% | {args.baseline_epochs} | "
        f"{base['time'][-1]:.0f} s | {reach_base} |",
        f"| disciplined tune + 1cycle | {100 * mine['acc'][-1]:.2f}% | {args.epochs:g} | "
        f"{mine['total']:.0f} s (tuning {mine['tuning']:.0f} s) | {reach_text} |",
        "",
        f"Goal (reach the baseline's final accuracy in <= 1/7 of its epochs and beat it at the "
        f"end): {'met' if met else 'not met'}.",
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
