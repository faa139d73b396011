"""Run by tests/test_distributed.py under `torchrun --nproc_per_node=N` (and as one plain
process for the reference): every decision a rank makes, written to OUT/rank{R}.json.

usage: ddp_worker.py OUT BATCH_PER_PROCESS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from disciplined import distributed
from disciplined.engine import Trainer, build_optimizer
from disciplined.executors import LocalExecutor
from disciplined.hyper import HyperScheduler
from disciplined.policies import policy_schedules
from disciplined.range_test import lr_range_test
from disciplined.searches import momentum_search
from disciplined.tasks import load_task
from disciplined.trials import Budget

STEPS = 60


def main() -> None:
    out, batch = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    team = distributed.init_from_env()
    task = load_task("digits")
    train, val = task.datasets()

    # the range test on the validation loss, diverging well before end_lr
    model = task.model(0)
    optimizer = build_optimizer("sgd", model, momentum=0.95, weight_decay=5e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rt = lr_range_test(model, optimizer, task.loss_fn, train, val_data=val, start_lr=1e-4,
                       end_lr=100.0, num_steps=80, batch_size=batch, momentum=(0.95, 0.85),
                       metric="accuracy", val_every=4, seed=0)
    restored = all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    # a loss that explodes on rank 1 only, from its 21st step: alone, rank 1 would stop there
    # and rank 0 would wait for it forever in the next gradient all-reduce
    calls = [0]

    def spiky(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return task.loss_fn(out, target) * (100.0 if team.rank == 1 and calls[0] > 20 else 1.0)

    model = task.model(0)
    alone = lr_range_test(model, build_optimizer("sgd", model), spiky, train, start_lr=1e-4,
                          end_lr=1e-2, num_steps=80, batch_size=batch, seed=0)

    # a 1cycle training: per-step losses and the evaluations
    model = task.model(0)
    optimizer = build_optimizer("sgd", model, lr=0.1, momentum=0.95, weight_decay=5e-4)
    lr, mom = policy_schedules("one-cycle", STEPS, 0.1, momentum=(0.95, 0.85))
    trainer = Trainer(model, optimizer, task.loss_fn, train, val, batch_size=batch,
                      eval_every=20, seed=0,
                      scheduler=HyperScheduler(optimizer, lr=lr, momentum=mom))
    history = trainer.run(steps=STEPS)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])

    # a comparison stage: every rank must rank the candidates alike
    search = momentum_search("digits", max_lr=0.1, budget=Budget(steps=30), batch_size=batch,
                             executor=LocalExecutor())
    ranks = [[r.label, r.val_loss] for r in search.comparisons[0].ranking]

    record = {
        "rank": team.rank, "world_size": team.size,
        "range_test": {"steps": len(rt.runs[0].lr), "stop": rt.stop_reason,
                       "max_lr": rt.max_lr, "val_loss": rt.runs[0].val_loss,
                       "total_batch_size": rt.total_batch_size, "restored": restored,
                       "spiky_steps": len(alone.runs[0].lr),
                       "spiky_stop": alone.stop_reason},
        "train": {"train_loss": history.train_loss, "val_loss": history.val_loss,
                  "val_metric": history.val_metric, "weight_sum": float(weights.sum()),
                  "weight_norm": float(weights.norm())},
        "search": {"decision": search.decision.to_dict(), "ranking": ranks},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{team.rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
