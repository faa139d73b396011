"""PyTorch Lightning: our 1cycle with cyclical momentum as a callback, and our range test on a
LightningModule. Needs `pip install 'disciplined[lightning]'`.

    from disciplined.lightning import OneCycle, range_test

    found = range_test(MyModule(), datamodule=dm)          # on a copy: `MyModule` untouched
    print(found.reading.why)                               # conclusive or not, and why
    trainer = L.Trainer(max_epochs=10, callbacks=[OneCycle(max_lr=found.max_lr)])
    trainer.fit(MyModule(), datamodule=dm)

The callback installs its scheduler as Lightning's own (stepped once per optimizer step, so
gradient accumulation is counted; saved in checkpoints as {"step": n} and resumed from them).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import LRSchedulerConfig

from .defaults import END_LR, MOMENTUM, NUM_STEPS, START_LR
from .errors import DisciplinedError
from .frameworks import isolated_rng, policy_scheduler, sweep_scheduler
from .hyper import HyperScheduler
from .policies import check_hyperparameters, check_policy
from .range_test import Mode, RangeTestResult, SweepRecord, range_test_result

# what the range test's throwaway Trainer sets itself; the caller may not
_SWEEP_OWNS = ("max_steps", "max_epochs", "callbacks", "logger", "enable_checkpointing",
               "accumulate_grad_batches", "limit_val_batches", "num_sanity_val_steps",
               "default_root_dir")


def _one_optimizer(trainer: pl.Trainer, who: str) -> torch.optim.Optimizer:
    module = trainer.lightning_module
    if not module.automatic_optimization:
        raise DisciplinedError(f"{who} needs automatic optimization; {type(module).__name__} "
                               "steps its optimizers itself (automatic_optimization = False)")
    if len(trainer.optimizers) != 1:
        raise DisciplinedError(f"{who} schedules one optimizer; {type(module).__name__}."
                               f"configure_optimizers returns {len(trainer.optimizers)}")
    return trainer.optimizers[0]


def _install(trainer: pl.Trainer, scheduler: HyperScheduler) -> None:
    """Ours as the trainer's only scheduler, stepped after every optimizer step."""
    trainer.strategy.lr_scheduler_configs = [
        LRSchedulerConfig(scheduler, name="disciplined", interval="step")]


class OneCycle(pl.Callback):
    """Train with a policy (1cycle by default) peaking at `max_lr`, momentum (Adam's beta1)
    cycling over `momentum`, across the Trainer's whole fit (`estimated_stepping_batches`:
    epochs, `max_steps` and gradient accumulation counted).

    A module whose `configure_optimizers` returns a scheduler of its own is refused: two
    schedulers writing one LR fight silently. Pass `replace=True` to drop the module's.
    The optimizer's param groups keep their LR ratios and weight decays."""

    def __init__(self, max_lr: float, *, momentum: tuple[float, float] = MOMENTUM,
                 policy: str = "one-cycle", cycle_momentum: bool = True,
                 replace: bool = False) -> None:
        check_hyperparameters(max_lr=max_lr, momentum=momentum)
        self.max_lr, self.momentum = max_lr, momentum
        self.policy, self.cycle_momentum = check_policy(policy), cycle_momentum
        self.replace = replace
        self.scheduler: HyperScheduler | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after configure_optimizers and before a checkpoint's states are restored: the
        # scheduler installed here is the one a resumed fit loads its step count into
        theirs = trainer.lr_scheduler_configs
        if theirs and not self.replace:
            names = ", ".join(type(c.scheduler).__name__ for c in theirs)
            raise DisciplinedError(
                f"{type(pl_module).__name__}.configure_optimizers returns a scheduler ({names})"
                f" and OneCycle would fight it for the learning rate: return only the "
                f"optimizer, or pass OneCycle(..., replace=True) to train with ours alone")
        optimizer = _one_optimizer(trainer, "OneCycle")
        self.scheduler = policy_scheduler(
            optimizer, total_steps=trainer.estimated_stepping_batches, max_lr=self.max_lr,
            policy=self.policy, momentum=self.momentum, cycle_momentum=self.cycle_momentum)
        _install(trainer, self.scheduler)


class _Sweep(pl.Callback):
    """The range test inside a Trainer: our sweep as its scheduler, each step's training loss
    (the mean over every rank, so that all ranks read one curve and stop together) into
    the record; a diverged loss stops the fit."""

    def __init__(self, **sweep: Any) -> None:
        self.sweep = sweep
        self.record: SweepRecord | None = None
        self.stop = ""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scheduler, self.record = sweep_scheduler(_one_optimizer(trainer, "the range test"),
                                                 **self.sweep)
        _install(trainer, scheduler)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor) or self.record is None or self.stop:
            return  # a batch the module skipped (training_step returned None)
        mean = trainer.strategy.reduce(loss.detach().float(), reduce_op="mean")
        self.stop = self.record.add(len(self.record.raw), float(mean))
        if self.stop:
            trainer.should_stop = True


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The throwaway Trainer's banners ('GPU available: ...') and data-loading hints are
    about a run the user did not start: not shown."""
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning\..*")
            yield
    finally:
        log.setLevel(level)


def range_test(module: pl.LightningModule, datamodule: pl.LightningDataModule | None = None,
               *, train_dataloaders: Any = None, start_lr: float = START_LR,
               end_lr: float = END_LR, num_steps: int = NUM_STEPS, mode: Mode = "exp",
               momentum: tuple[float, float] | None = MOMENTUM, seed: int = 0,
               **trainer_kwargs: Any) -> RangeTestResult:
    """The LR range test on a copy of `module`, trained by a throwaway Trainer (no logger,
    no checkpoint, nothing written) for `num_steps` optimizer steps while the LR sweeps from
    `start_lr` to `end_lr` (momentum or beta1 from `momentum[0]` down to `momentum[1]`).

    `module`, its optimizer's settings and every RNG are as they were afterwards; param
    groups keep their LR ratios (the suggestion is the largest group's LR). Under DDP the
    curve is the loss averaged over the ranks, so every rank gets the same suggestion.
    `trainer_kwargs` go to the Trainer (accelerator, devices, strategy, precision).
    The result's `reading` says whether the curve shows anything; when it does not, no
    number read from it deserves trust: decide by short runs (`disciplined tune`)."""
    if taken := sorted(set(trainer_kwargs) & set(_SWEEP_OWNS)):
        raise TypeError(f"range_test sets {', '.join(taken)} of its Trainer itself: "
                        f"use num_steps for the sweep's length")
    if (datamodule is None) == (train_dataloaders is None):
        raise TypeError("give the training data as datamodule= or train_dataloaders= "
                        "(one of the two)")
    sweep = _Sweep(start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, mode=mode,
                   momentum=momentum)
    model = copy.deepcopy(module)  # Lightning's __getstate__ leaves the trainer behind
    with isolated_rng(seed), tempfile.TemporaryDirectory() as root, _quiet():
        trainer = pl.Trainer(max_steps=num_steps, max_epochs=-1, callbacks=[sweep],
                             logger=False, enable_checkpointing=False,
                             accumulate_grad_batches=1, limit_val_batches=0,
                             num_sanity_val_steps=0, default_root_dir=root,
                             enable_progress_bar=False, enable_model_summary=False,
                             **trainer_kwargs)
        trainer.fit(model, datamodule=datamodule, train_dataloaders=train_dataloaders)
    if sweep.record is None:
        raise DisciplinedError("the range test's Trainer never started training (no "
                               "training batches?)")
    loader = trainer.train_dataloader
    batch_size = getattr(loader, "batch_size", None)
    return range_test_result([sweep.record.curve(sweep.stop, seed)], source="train",
                             mode=mode, start_lr=start_lr, end_lr=end_lr,
                             batch_size=batch_size if isinstance(batch_size, int) else None,
                             world_size=trainer.world_size)
