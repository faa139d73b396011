"""Run by tests/test_lightning.py under `torchrun --nproc_per_node=2`: Lightning's DDP on gloo
runs our range test; each rank writes the curve it read and its suggestion, and at exit
whether its process group outlived the library's teardown."""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from lightning_digits import DigitsData, DigitsModule

from disciplined.lightning import range_test

out = Path(sys.argv[1])


@atexit.register  # registered first, so it runs last: after the library's own teardown
def _whether_the_group_outlived_exit() -> None:
    (out / f"exit{os.environ['RANK']}.txt").write_text(str(dist.is_initialized()))


torch.manual_seed(0)  # the same weights at every launch (DDP copies rank 0's to rank 1)
found = range_test(DigitsModule(), DigitsData(batch_size=32), num_steps=60,
                   accelerator="cpu", devices=2, strategy="ddp")
rank = dist.get_rank() if dist.is_initialized() else 0
out.mkdir(parents=True, exist_ok=True)
(out / f"rank{rank}.json").write_text(json.dumps(
    {"loss": found.runs[0].loss, "max_lr": found.max_lr, "world_size": found.world_size}))
