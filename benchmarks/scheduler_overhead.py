"""Cost of one scheduler step: HyperScheduler (LR + momentum) against torch's OneCycleLR.

Both drive the same kind of optimizer (SGD with momentum) with the same 1cycle arguments; the
two are timed interleaved, block by block, so machine noise hits both alike. Reported: the
median over blocks of the time per `step()`, with the interquartile range.

    python benchmarks/scheduler_overhead.py [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch
from _common import header, publish, quartiles

from disciplined import HyperScheduler
from disciplined import schedules as S

TOTAL = 10_000_000  # long enough that neither scheduler reaches its end
MAX_LR = 0.5
BLOCK = 200  # steps timed together
BLOCKS = 300  # blocks per contender, interleaved
MARK = "scheduler-overhead"


def _optimizer(groups: int) -> torch.optim.Optimizer:
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)]
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def _contenders(groups: int) -> dict[str, object]:
    ours = HyperScheduler(_optimizer(groups), lr=S.one_cycle(TOTAL, MAX_LR),
                          momentum=S.one_cycle_momentum(TOTAL))
    torch_opt = _optimizer(groups)
    theirs = torch.optim.lr_scheduler.OneCycleLR(
        torch_opt, max_lr=MAX_LR, total_steps=TOTAL, pct_start=0.45, div_factor=10.0,
        anneal_strategy="linear", three_phase=True)
    return {"disciplined.HyperScheduler": ours, "torch OneCycleLR": theirs}


def _time_block(sched: object) -> float:
    step = sched.step  # type: ignore[attr-defined]
    start = time.perf_counter_ns()
    for _ in range(BLOCK):
        step()
    return (time.perf_counter_ns() - start) / BLOCK / 1000.0  # microseconds per step


def measure(groups: int) -> dict[str, list[float]]:
    contenders = _contenders(groups)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that optimizer.step() was not called
        for sched in contenders.values():  # warm up
            _time_block(sched)
        for _ in range(BLOCKS):
            for name, sched in contenders.items():
                samples[name].append(_time_block(sched))
    return samples


def report() -> list[str]:
    rows = []
    for groups in (1, 100):
        samples = measure(groups)
        ours = quartiles(samples["disciplined.HyperScheduler"])
        theirs = quartiles(samples["torch OneCycleLR"])
        rows.append(
            f"| {groups} | {ours[1]:.2f} ({ours[0]:.2f}-{ours[2]:.2f}) "
            f"| {theirs[1]:.2f} ({theirs[0]:.2f}-{theirs[2]:.2f}) | {ours[1] / theirs[1]:.3f}x |"
        )
    lines = [
        *header("Scheduler overhead: `HyperScheduler.step()` against `OneCycleLR.step()`",
                "make bench-scheduler"),
        f"- method: SGD with momentum, 1cycle LR + cyclical momentum on both sides; {BLOCKS} "
        f"blocks of {BLOCK} steps per contender, interleaved; median (interquartile range) "
        "of microseconds per `step()`",
        "",
        "| param groups | disciplined.HyperScheduler (µs) | torch OneCycleLR (µs) | ours / torch |",
        "|---:|---:|---:|---:|",
        *rows,
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, help="update this RESULTS.md section")
    args = parser.parse_args()
    torch.set_num_threads(1)
    publish(report(), args.write, MARK)


if __name__ == "__main__":
    main()
