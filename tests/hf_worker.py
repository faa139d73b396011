"""Run by tests/test_hf.py under `torchrun --nproc_per_node=2`: the Trainer's DDP on gloo runs
our range test; each process writes the curve it read and its suggestion, and at exit
whether its process group outlived the library's teardown."""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
from hf_tiny import Majority, model_init
from transformers import TrainingArguments

from disciplined.hf import range_test

out = Path(sys.argv[1])


@atexit.register  # registered first, so it runs last: after the library's own teardown
def _whether_the_group_outlived_exit() -> None:
    (out / f"exit{os.environ['RANK']}.txt").write_text(str(dist.is_initialized()))


args = TrainingArguments(output_dir=str(out / "unused"), per_device_train_batch_size=16,
                         report_to="none", disable_tqdm=True, use_cpu=True)
found = range_test(model_init, Majority(1000, 0), args, num_steps=40)
rank = dist.get_rank() if dist.is_initialized() else 0
out.mkdir(parents=True, exist_ok=True)
(out / f"rank{rank}.json").write_text(json.dumps(
    {"loss": found.runs[0].loss, "max_lr": found.max_lr, "world_size": found.world_size}))
