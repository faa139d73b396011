"""How steady a training step's time is: what `tune`'s plan measures, against later steps.

`tune` sizes every run of its budget from 20 training steps timed after 2 warm-up steps
(`recipe._measure`). This builds the same trainer for a zoo task (one thread, as the zoo
runs), trains 300 steps, and times them in blocks: steps 2-22 (what the plan times), 22-100,
100-200 and 200-300, a few times in one process. Where the blocks differ, so do the plans
of two runs of `tune` on the same task.

    make bench-step-time
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from _common import header, publish

from disciplined.tasks import load_task
from disciplined.trials import Budget, TrialSpec, build_trainer

BLOCKS = (2, 22, 100, 200, 300)  # block edges, in steps; 2-22 is what the plan times
MARK = "step-time"


def blocks(name: str) -> list[float]:
    """Milliseconds per step in each block of BLOCKS, for a trainer built as tune's plan
    builds it."""
    task = load_task(f"zoo/{name}")
    spec = TrialSpec(f"zoo/{name}", max_lr=1e-3, budget=Budget(steps=BLOCKS[-1]),
                     batch_size=task.batch_size, seed=0)
    trainer, _ = build_trainer(spec, task=task, device="cpu", evaluate=False)
    trainer.run(steps=BLOCKS[0])
    out = []
    for first, last in itertools.pairwise(BLOCKS):
        began = time.perf_counter()
        trainer.run(steps=last - first)
        out.append(1000 * (time.perf_counter() - began) / (last - first))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="transformer_sorted,fashion_bn_small,"
                        "tabular_small_adamw,mnist1d_cnn")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--write", type=Path, help="put the table into this RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for repeat in range(args.repeats):
        for name in args.tasks.split(","):
            ms = blocks(name)
            rows.append(f"| {name} | {repeat + 1} | " + " | ".join(f"{m:.1f}" for m in ms)
                        + f" | {ms[0] / ms[-1]:.2f} |")
            print(rows[-1], flush=True)
    spans = [f"{a}-{b}" for a, b in itertools.pairwise(BLOCKS)]
    lines = header("How steady a training step's time is (step-time)", "make bench-step-time")
    lines += ["", "Milliseconds per training step in blocks of steps, for the trainer tune's "
              "plan times (`recipe._measure`: steps 2-22), each task built afresh, one "
              "thread; the last column is the plan's block over the last one (above 1: the "
              "plan overestimates the step time, and every run it sizes is shorter than "
              "the budget allows).", "",
              "| task | pass | " + " | ".join(f"steps {s}" for s in spans)
              + " | plan's / last |", "|---|---|" + "---:|" * (len(spans) + 1), *rows]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
