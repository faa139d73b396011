"""A task file that the Hugging Face Trainer trains: `disciplined tune tests/hf_task.py`."""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import TrainingArguments

sys.path.insert(0, str(Path(__file__).parent))  # the helper beside this file, wherever it runs

from hf_tiny import Majority, model_init

from disciplined.hf import task


def datasets() -> tuple[Majority, Majority]:
    return Majority(1000, seed=0), Majority(300, seed=1)


def accuracy(prediction: object) -> dict[str, float]:
    logits, labels = prediction  # type: ignore[misc]
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


ARGS = TrainingArguments(per_device_train_batch_size=32, per_device_eval_batch_size=128,
                         use_cpu=True, report_to="none")
TASK = task(model_init, datasets, ARGS, compute_metrics=accuracy, metric="accuracy",
            epochs=2)
