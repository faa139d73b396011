"""LR finders side by side: ours, torch-lr-finder's `range_test` and Lightning's
`Tuner.lr_find` (the real packages) on the same model, data and sweep (1e-7 -> 10, 100
steps, SGD momentum 0.9, weight decay 5e-4, the task's batch size). Reported: each test's wall
time (median of 3), its suggestion, and the final accuracy of a 1cycle training at that
suggestion (the task's default length, several seeds).

    make bench-lr-finders
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import final_metric, header, publish
from torch.utils.data import DataLoader

from disciplined.engine import build_optimizer
from disciplined.range_test import lr_range_test
from disciplined.tasks import load_task

MARK = "lr-finders"
START, END, STEPS, WD = 1e-7, 10.0, 100, 5e-4



def _epochs(task: str) -> float:
    """The task's own final length (what `tune` trains it for without a budget)."""
    return load_task(task).epochs or 10

def _fresh(task_name: str, seed: int = 0):
    task = load_task(task_name)
    torch.manual_seed(seed)
    return task, task.model()


def ours(task_name: str) -> float | None:
    task, model = _fresh(task_name)
    train, _ = task.datasets()
    opt = build_optimizer("sgd", model, momentum=0.9, weight_decay=WD)
    return lr_range_test(model, opt, task.loss_fn, train, start_lr=START, end_lr=END,
                         num_steps=STEPS, momentum=(0.95, 0.85),
                         batch_size=task.batch_size).max_lr


def torch_lr_finder(task_name: str) -> float | None:
    from matplotlib.figure import Figure
    from torch_lr_finder import LRFinder

    task, model = _fresh(task_name)
    train, _ = task.datasets()
    opt = torch.optim.SGD(model.parameters(), lr=START, momentum=0.9, weight_decay=WD)
    finder = LRFinder(model, opt, task.loss_fn, device="cpu")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        finder.range_test(DataLoader(train, batch_size=task.batch_size, shuffle=True),
                          start_lr=START, end_lr=END, num_iter=STEPS)
        # its own suggestion: the steepest gradient, skipping 10 points at the start, 5 at
        # the end (the defaults of LRFinder.plot)
        _, suggestion = finder.plot(skip_start=10, skip_end=5, suggest_lr=True,
                                    ax=Figure().subplots())
    finder.reset()
    return float(suggestion) if suggestion is not None else None


def lightning(task_name: str) -> float | None:
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    task, model = _fresh(task_name)
    train, _ = task.datasets()

    class Lit(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.lr = model, START

        def training_step(self, batch, _):
            return task.loss_fn(self.model(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9,
                                   weight_decay=WD)

        def train_dataloader(self):
            return DataLoader(train, batch_size=task.batch_size, shuffle=True)

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        # enough epochs that the 100 steps never run out of data (lr_find stops at max_steps)
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1000, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=tmp)
        result = Tuner(trainer).lr_find(Lit(), min_lr=START, max_lr=END,
                                        num_training=STEPS)
    suggestion = result.suggestion() if result is not None else None
    return float(suggestion) if suggestion is not None else None


FINDERS = {"disciplined (Smith's rule)": ours, "torch-lr-finder": torch_lr_finder,
           "Lightning Tuner.lr_find": lightning}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist1d", "fashion-mnist"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows = []
    for task in args.tasks:
        times: dict[str, list[float]] = {n: [] for n in FINDERS}
        suggestions: dict[str, float | None] = {}
        for _ in range(3):  # interleaved repetitions for the wall time
            for name, finder in FINDERS.items():
                start = time.perf_counter()
                suggestions[name] = finder(task)
                times[name].append(time.perf_counter() - start)
        for name in FINDERS:
            lr = suggestions[name]
            accs = [] if lr is None else [
                final_metric(task, lr, _epochs(task), s) for s in args.seeds]
            spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
            acc = "-" if not accs else \
                f"{100 * statistics.mean(accs):.2f}% ± {100 * spread:.2f}"
            rows.append(f"| {task} | {name} | {statistics.median(times[name]):.2f} s | "
                        f"{'-' if lr is None else f'{lr:.3g}'} | {acc} |")
            print(rows[-1], flush=True)
    lines = [
        *header("LR finders side by side: ours, torch-lr-finder, Lightning",
                "make bench-lr-finders", _peer_versions()),
        f"- sweep {START:g} -> {END:g} in {STEPS} steps, SGD momentum 0.9, wd {WD:g}, the "
        "task's batch size; ours also sweeps momentum 0.95 -> 0.85 (its default). Wall time: "
        "median of 3 interleaved runs (includes each tool's state restore). Accuracy: 1cycle "
        "(`disciplined train --policy one-cycle`) at the suggestion for the task's default "
        f"length ({', '.join(f'{t} {_epochs(t)} epochs' for t in args.tasks)}), seeds "
        f"{args.seeds}, mean ± std.",
        "",
        "| task | finder | test wall time | suggested max LR | 1cycle accuracy at it |",
        "|---|---|---:|---:|---:|",
        *rows,
    ]
    publish(lines, args.write, MARK)


def _peer_versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("torch-lr-finder", "pytorch-lightning"))


if __name__ == "__main__":
    main()
