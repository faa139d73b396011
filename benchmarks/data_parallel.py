"""Data parallelism on this machine's CPUs: torchrun with 2 processes x batch 64 against one
process with batch 128, on Fashion-MNIST's LeNet; the same total batch, so the same samples
in every step.

For each: the range test (wall time, steps, suggested LR) and one 1cycle epoch (wall time,
samples/s, final validation accuracy), plus the cost of the all-reduce that keeps the ranks'
range-test decisions together (timed alone, 200 calls).

    make bench-data-parallel
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import header, publish

MARK = "data-parallel"
TASK = "fashion-mnist"
TOTAL_BATCH = 128


def worker(out: Path, batch: int) -> None:
    """One rank (or the single process): measure and write rank{R}.json."""
    from disciplined import distributed
    from disciplined.engine import Trainer, build_optimizer, steps_per_epoch
    from disciplined.hyper import HyperScheduler
    from disciplined.policies import policy_schedules
    from disciplined.range_test import task_range_test
    from disciplined.tasks import load_task

    team = distributed.init_from_env()
    task = load_task(TASK)
    train, val = task.datasets()
    task_range_test(task, weight_decay=5e-4, momentum=(0.95, 0.85), batch_size=batch)  # warm
    start = time.perf_counter()
    rt = task_range_test(task, weight_decay=5e-4, momentum=(0.95, 0.85), batch_size=batch)
    range_seconds = time.perf_counter() - start

    model = task.model(0)
    optimizer = build_optimizer(task.optimizer, model, lr=rt.max_lr or 0.01,
                                momentum=0.95, weight_decay=5e-4)
    steps = steps_per_epoch(train, batch)
    lr, mom = policy_schedules("one-cycle", steps, rt.max_lr or 0.01, momentum=(0.95, 0.85))
    trainer = Trainer(model, optimizer, task.loss_fn, train, val, batch_size=batch, seed=0,
                      scheduler=HyperScheduler(optimizer, lr=lr, momentum=mom))
    start = time.perf_counter()
    history = trainer.run(steps=steps)
    train_seconds = time.perf_counter() - start

    reduce_ms = None
    if team.size > 1:
        distributed.mean([1.0])
        start = time.perf_counter()
        for _ in range(200):
            distributed.mean([1.0])
        reduce_ms = (time.perf_counter() - start) / 200 * 1000
    record = {"world_size": team.size, "range_seconds": range_seconds,
              "range_steps": len(rt.runs[0].lr), "max_lr": rt.max_lr,
              "train_seconds": train_seconds, "steps": steps,
              "samples_per_second": history.samples_per_second,
              "accuracy": history.val_metric[-1], "reduce_ms": reduce_ms,
              "threads": torch.get_num_threads()}
    (out / f"rank{team.rank}.json").write_text(json.dumps(record))


def _launch(out: Path, nproc: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    batch = TOTAL_BATCH // nproc
    me = [str(Path(__file__).resolve()), "--worker", str(out), str(batch)]
    if nproc == 1:
        command = [sys.executable, *me]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                   "--master_addr=127.0.0.1", f"--master_port={port}", *me]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]
    assert all(r["max_lr"] == ranks[0]["max_lr"] for r in ranks), "ranks disagree"
    return ranks[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="Put the section into this RESULTS.md.")
    parser.add_argument("--worker", nargs=2, metavar=("OUT", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), int(args.worker[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        one = _launch(Path(tmp) / "one", 1)
        two = _launch(Path(tmp) / "two", 2)
    speed = two["samples_per_second"] / one["samples_per_second"]
    lines = header("Data parallelism under torchrun on CPUs: 2 processes against 1",
                   "make bench-data-parallel")
    lines += [
        "",
        f"Task {TASK} (Caffe LeNet), total batch {TOTAL_BATCH}: one process with batch "
        f"{TOTAL_BATCH} and torch's {one['threads']} threads, against `torchrun "
        f"--nproc_per_node=2` with batch {TOTAL_BATCH // 2} per process (gloo, torchrun's "
        f"{two['threads']} thread per process). Range test after a warm-up one; then one 1cycle "
        "epoch at its suggested LR.",
        "",
        "| | 1 process | 2 processes |",
        "|---|---:|---:|",
        f"| range test, s ({one['range_steps']} / {two['range_steps']} steps) | "
        f"{one['range_seconds']:.2f} | {two['range_seconds']:.2f} |",
        f"| suggested max LR | {one['max_lr']:.4g} | {two['max_lr']:.4g} |",
        f"| one 1cycle epoch, s ({one['steps']} / {two['steps']} steps) | "
        f"{one['train_seconds']:.1f} | {two['train_seconds']:.1f} |",
        f"| training samples/s | {one['samples_per_second']:,.0f} | "
        f"{two['samples_per_second']:,.0f} |",
        f"| validation accuracy after the epoch | {one['accuracy']:.2%} | "
        f"{two['accuracy']:.2%} |",
        "",
        f"- the all-reduce of the loss that keeps ranks' range-test decisions together: "
        f"{two['reduce_ms']:.3f} ms a call (gloo, 2 processes, 200 calls)",
        "- both ranks suggested the same LR (checked by the script).",
        f"- speed, 2 processes against 1: {speed:.2f}x "
        "on this machine, where one process already keeps both cores busy with torch's "
        "threads; data parallelism pays with a GPU (or a machine) per process, which this "
        "measurement does not have.",
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
