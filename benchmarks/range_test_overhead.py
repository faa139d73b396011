"""Wall time of an LR range test: ours, a raw loop, and torch-lr-finder's `range_test`.

All three do the same 100 optimizer steps (batch 128, LR swept exponentially from 1e-5 to 0.1,
SGD with momentum 0.9 and weight decay 5e-4) from the same initial weights; no early stop.
The raw loop sets the LR by hand, slices tensors, and records the loss: the floor. Ours and
torch-lr-finder also restore the model and optimizer afterwards, as a user needs. With
validation, both read the same fixed 512-sample validation subset: ours every 5 steps (its
default), torch-lr-finder after every step (its only way). Runs are interleaved; medians.

    make bench-range-test   (needs torch-lr-finder and Fashion-MNIST; the target installs both)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import header, publish, quartiles
from torch.utils.data import DataLoader, TensorDataset

from disciplined import schedules
from disciplined.engine import build_optimizer
from disciplined.range_test import lr_range_test
from disciplined.tasks import load_task

# END_LR stays below where LeNet diverges, so every contender does all STEPS steps.
STEPS, BATCH, START_LR, END_LR, VAL_SAMPLES = 100, 128, 1e-5, 0.1, 512
MARK = "range-test-overhead"


def _fresh(task_name: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    task = load_task(task_name)
    torch.manual_seed(0)
    model = task.model()
    return model, build_optimizer("sgd", model, lr=START_LR, momentum=0.9, weight_decay=5e-4)


def raw_loop(task_name: str, train: TensorDataset, val: TensorDataset | None) -> None:
    model, opt = _fresh(task_name)
    sweep = schedules.lr_range(START_LR, END_LR, STEPS)
    x_all, y_all = train.tensors
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for k in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = sweep(k)
        idx = order[(k * BATCH) % len(order):][:BATCH]
        loss = loss_fn(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if val is not None and (k + 1) % 5 == 0:
            with torch.no_grad():
                model.eval()
                losses.append(loss_fn(model(val.tensors[0]), val.tensors[1]).item())
                model.train()


def ours(task_name: str, train: TensorDataset, val: TensorDataset | None) -> None:
    model, opt = _fresh(task_name)
    result = lr_range_test(model, opt, torch.nn.CrossEntropyLoss(), train, val_data=val,
                           start_lr=START_LR, end_lr=END_LR, num_steps=STEPS,
                           batch_size=BATCH, val_every=5, val_samples=VAL_SAMPLES,
                           diverge_factor=None)
    if len(result.runs[0].lr) != STEPS:
        raise RuntimeError(f"ours stopped after {len(result.runs[0].lr)} steps: "
                           f"{result.stop_reason}")


def torch_lr_finder(task_name: str, train: TensorDataset, val: TensorDataset | None) -> None:
    from torch_lr_finder import LRFinder

    model, opt = _fresh(task_name)
    finder = LRFinder(model, opt, torch.nn.CrossEntropyLoss(), device="cpu")
    loader = DataLoader(train, batch_size=BATCH, shuffle=True)
    val_loader = None if val is None else DataLoader(val, batch_size=VAL_SAMPLES)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        finder.range_test(loader, val_loader=val_loader, start_lr=START_LR, end_lr=END_LR,
                          num_iter=STEPS, step_mode="exp", diverge_th=1e12)
    if len(finder.history["lr"]) != STEPS:
        raise RuntimeError(f"torch-lr-finder stopped after {len(finder.history['lr'])} steps")
    finder.reset()


CONTENDERS: dict[str, Callable[[str, TensorDataset, TensorDataset | None], None]] = {
    "raw loop": raw_loop, "disciplined.lr_range_test": ours,
    "torch-lr-finder range_test": torch_lr_finder,
}


def measure(task_name: str, repeats: int) -> list[str]:
    train, val_full = load_task(task_name).datasets()
    assert isinstance(train, TensorDataset) and isinstance(val_full, TensorDataset)
    val = TensorDataset(*(t[:VAL_SAMPLES] for t in val_full.tensors))
    rows = []
    for with_val in (False, True):
        times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        for run in CONTENDERS.values():  # warm-up: first-call costs are not the test's
            run(task_name, train, val if with_val else None)
        for _ in range(repeats):
            for name, run in CONTENDERS.items():
                start = time.perf_counter()
                run(task_name, train, val if with_val else None)
                times[name].append(time.perf_counter() - start)
        raw = quartiles(times["raw loop"])[1]
        for name, samples in times.items():
            q1, med, q3 = quartiles(samples)
            rows.append(f"| {task_name} | {'val every 5 / every step' if with_val else 'train'} "
                        f"| {name} | {med:.2f} ({q1:.2f}-{q3:.2f}) | {med / raw:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist1d", "fashion-mnist"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from importlib.metadata import version

    import torch_lr_finder  # noqa: F401  (fail early if the peer is missing)

    rows = [row for task in args.tasks for row in measure(task, args.repeats)]
    lines = [
        *header("LR range test: wall time against a raw loop and torch-lr-finder",
                "make bench-range-test",
                f"torch-lr-finder {version('torch-lr-finder')}"),
        f"- method: {STEPS} steps, batch {BATCH}, exp sweep {START_LR:g} -> {END_LR:g}, "
        f"SGD momentum 0.9, wd 5e-4, no early stop; {args.repeats} interleaved runs per "
        f"contender; median (interquartile range) in seconds, including model/optimizer "
        f"restore for ours and torch-lr-finder. Validation: the same {VAL_SAMPLES} samples, "
        "ours every 5 steps (default), torch-lr-finder every step (its only mode), raw loop "
        "every 5 steps.",
        "",
        "| task | loss read | contender | seconds | vs raw loop |",
        "|---|---|---|---:|---:|",
        *rows,
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
