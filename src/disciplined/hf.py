"""Hugging Face `Trainer`: our 1cycle with cyclical beta1 in place of its schedule, and our
range test on a `model_init`. Needs `pip install 'disciplined[hf]'`.

    from disciplined.hf import OneCycleTrainer, range_test

    found = range_test(model_init, train_dataset, args)   # a fresh model: nothing changes
    print(found.reading.why)                              # conclusive or not, and why
    args.learning_rate = found.max_lr                     # the 1cycle's peak
    OneCycleTrainer(model_init=model_init, args=args, train_dataset=train_dataset).train()

`OneCycleTrainer` keeps the Trainer's optimizer (AdamW, with biases and LayerNorm weights in
a group without weight decay: that group stays at 0) and replaces only its scheduler; the
scheduler is saved in checkpoints as {"step": n} and resumed from them.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from .defaults import END_LR, MOMENTUM, NUM_STEPS, START_LR
from .errors import DisciplinedError
from .frameworks import isolated_rng, policy_scheduler, sweep_scheduler
from .policies import check_hyperparameters, check_policy
from .range_test import Mode, RangeTestResult, SweepRecord, range_test_result


class OneCycleTrainer(Trainer):
    """A `Trainer` whose schedule is a policy (1cycle by default) peaking at
    `args.learning_rate`, with beta1 (or SGD's momentum) cycling over `momentum`, across
    the training's optimizer steps (epochs, `max_steps` and gradient accumulation counted by
    the Trainer). A scheduler passed in `optimizers=` or a warm-up in the arguments is
    refused: the policy warms up itself, and two schedules would fight for the LR."""

    def __init__(self, *args: Any, momentum: tuple[float, float] = MOMENTUM,
                 policy: str = "one-cycle", cycle_momentum: bool = True,
                 **kwargs: Any) -> None:
        check_hyperparameters(momentum=momentum)
        self.momentum, self.policy = momentum, check_policy(policy)
        self.cycle_momentum = cycle_momentum
        super().__init__(*args, **kwargs)
        given = kwargs.get("optimizers", (None, None))[1]
        if given is not None:
            raise DisciplinedError(
                f"OneCycleTrainer got a scheduler ({type(given).__name__}) in optimizers=: "
                f"it would fight the 1cycle for the learning rate; pass (optimizer, None), "
                f"or use the plain Trainer with that scheduler")
        if self.args.warmup_steps or getattr(self.args, "warmup_ratio", 0):
            raise DisciplinedError(
                "OneCycleTrainer warms up itself (the 1cycle's first phase): set "
                "warmup_steps and warmup_ratio to 0 in the TrainingArguments")

    def create_scheduler(self, num_training_steps: int,
                         optimizer: torch.optim.Optimizer | None = None) -> Any:
        if self.lr_scheduler is None:
            self.lr_scheduler = policy_scheduler(  # type: ignore[assignment]
                _optimizer(self, optimizer), total_steps=num_training_steps,
                max_lr=self.args.learning_rate, policy=self.policy, momentum=self.momentum,
                cycle_momentum=self.cycle_momentum)
        return self.lr_scheduler


def _optimizer(trainer: Trainer, given: torch.optim.Optimizer | None) -> torch.optim.Optimizer:
    """The optimizer `create_scheduler` was given, else the one the Trainer made."""
    optimizer = given or trainer.optimizer
    if optimizer is None:
        raise RuntimeError("create_scheduler ran before the Trainer made its optimizer")
    return optimizer


class _Stop(TrainerCallback):
    """Ends the sweep's training once its loss has diverged."""

    def __init__(self, trainer: _SweepTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.trainer.stop:
            control.should_training_stop = True
        return control


class _SweepTrainer(Trainer):
    """The range test inside a Trainer: our sweep as its scheduler, each step's training loss
    (the mean over every process, so that all read one curve and stop together) into the
    record."""

    def __init__(self, *args: Any, sweep: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sweep = sweep
        self.record: SweepRecord | None = None
        self.stop = ""
        self.add_callback(_Stop(self))
        self.remove_callback(PrinterCallback)  # the throwaway run's summary is not news

    def create_scheduler(self, num_training_steps: int,
                         optimizer: torch.optim.Optimizer | None = None) -> Any:
        scheduler, self.record = sweep_scheduler(_optimizer(self, optimizer), **self.sweep)
        self.lr_scheduler = scheduler  # type: ignore[assignment]
        return scheduler

    def training_step(self, model: nn.Module, inputs: Any,
                      num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.record is not None and not self.stop:
            mean = self.accelerator.reduce(loss.detach().float(), reduction="mean")
            self.stop = self.record.add(len(self.record.raw), float(mean))
        return loss


def range_test(model_init: Callable[[], nn.Module], train_dataset: Any,
               args: TrainingArguments | None = None, *, data_collator: Any = None,
               start_lr: float = START_LR, end_lr: float = END_LR,
               num_steps: int = NUM_STEPS, mode: Mode = "exp",
               momentum: tuple[float, float] | None = MOMENTUM,
               seed: int = 0) -> RangeTestResult:
    """The LR range test on a fresh model from `model_init`, trained by a throwaway Trainer
    with `args`' batch size, optimizer and precision (nothing saved, logged or reported) for
    `num_steps` optimizer steps while the LR sweeps from `start_lr` to `end_lr` (beta1 from
    `momentum[0]` down to `momentum[1]`).

    Every RNG is as it was afterwards. Under torchrun every process reads the loss averaged
    over all of them, so all get the same suggestion. The result's `reading` says whether
    the curve shows anything: on transformers it often does not (their loss stays on a
    plateau at first), and then no number read from it deserves trust: decide by short
    runs."""
    if args is not None and not isinstance(args, TrainingArguments):
        raise TypeError(f"args must be transformers.TrainingArguments, got {type(args)}")
    sweep = {"start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps, "mode": mode,
             "momentum": momentum}
    with isolated_rng(seed), tempfile.TemporaryDirectory() as root:
        throwaway = dict(output_dir=root, max_steps=num_steps, save_strategy="no",
                         eval_strategy="no", logging_strategy="no", report_to="none",
                         gradient_accumulation_steps=1, warmup_steps=0, disable_tqdm=True,
                         seed=seed, data_seed=seed)
        if args is None:
            sweep_args = TrainingArguments(**throwaway)  # type: ignore[arg-type]
        else:
            sweep_args = dataclasses.replace(args, **throwaway)  # type: ignore[arg-type]
        trainer = _SweepTrainer(model=model_init(), args=sweep_args,
                                train_dataset=train_dataset, data_collator=data_collator,
                                sweep=sweep)
        trainer.train()
    if trainer.record is None:
        raise DisciplinedError("the range test's Trainer never started training (an empty "
                               "train_dataset?)")
    return range_test_result([trainer.record.curve(trainer.stop, seed)], source="train",
                             mode=mode, start_lr=start_lr, end_lr=end_lr,
                             batch_size=sweep_args.per_device_train_batch_size,
                             world_size=sweep_args.world_size)
