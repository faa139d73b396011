"""PyTorch Lightning: our 1cycle with cyclical momentum as a callback, and our range test on a
LightningModule. Needs `pip install 'disciplined[lightning]'`.

    from disciplined.lightning import OneCycle, range_test

    found = range_test(MyModule(), datamodule=dm)          # on a copy: `MyModule` untouched
    print(found.reading.why)                               # conclusive or not, and why
    trainer = L.Trainer(max_epochs=10, callbacks=[OneCycle(max_lr=found.max_lr)])
    trainer.fit(MyModule(), datamodule=dm)

The callback installs its scheduler as Lightning's own (stepped once per optimizer step, so
gradient accumulation is counted; saved in checkpoints as {"step": n} and resumed from them).
A task file with `TASK = task(MyModule, MyDataModule)` is a task `disciplined tune` runs the
whole recipe on, every trial a Lightning fit.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import LRSchedulerConfig
from torch import nn
from torch.utils.data import DataLoader

from .defaults import END_LR, MOMENTUM, NUM_STEPS, START_LR
from .distributed import leave_at_exit
from .engine import History
from .errors import DisciplinedError
from .frameworks import (
    MEASURE_SKIP,
    Recorder,
    check_optimizer,
    check_trial,
    evals_every,
    framework_task,
    isolated_rng,
    policy_scheduler,
    set_weight_decay,
    sweep_scheduler,
)
from .hyper import HyperScheduler
from .policies import check_hyperparameters, check_policy
from .range_test import Mode, RangeTestResult, SweepRecord, range_test_result
from .tasks import OPTIMIZERS, OptimizerKind, Task, TaskError
from .trials import Budget, TrialSpec

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
    The optimizer's param groups keep their LR ratios; with `weight_decay`, every group
    that decays gets it (a no-decay group stays at 0), else each keeps its own."""

    def __init__(self, max_lr: float, *, momentum: tuple[float, float] = MOMENTUM,
                 policy: str = "one-cycle", cycle_momentum: bool = True,
                 replace: bool = False, weight_decay: float | None = None) -> None:
        check_hyperparameters(max_lr=max_lr, momentum=momentum, weight_decay=weight_decay)
        self.max_lr, self.momentum = max_lr, momentum
        self.policy, self.cycle_momentum = check_policy(policy), cycle_momentum
        self.replace, self.weight_decay = replace, weight_decay
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
        if self.weight_decay is not None:
            set_weight_decay(optimizer, self.weight_decay)
        self.scheduler = policy_scheduler(
            optimizer, total_steps=trainer.estimated_stepping_batches, max_lr=self.max_lr,
            policy=self.policy, momentum=self.momentum, cycle_momentum=self.cycle_momentum)
        _install(trainer, self.scheduler)


class _Sweep(pl.Callback):
    """The range test inside a Trainer: our sweep as its scheduler, each step's training loss
    (the mean over every rank, so that all ranks read one curve and stop together) into
    the record; a diverged loss stops the fit."""

    def __init__(self, weight_decay: float | None, **sweep: Any) -> None:
        self.sweep, self.weight_decay = sweep, weight_decay
        self.record: SweepRecord | None = None
        self.stop = ""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = _one_optimizer(trainer, "the range test")
        if self.weight_decay is not None:
            set_weight_decay(optimizer, self.weight_decay)
        scheduler, self.record = sweep_scheduler(optimizer, **self.sweep)
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
               weight_decay: float | None = None, **trainer_kwargs: Any) -> RangeTestResult:
    """The LR range test on a copy of `module`, trained by a throwaway Trainer (no logger,
    no checkpoint, nothing written) for `num_steps` optimizer steps while the LR sweeps from
    `start_lr` to `end_lr` (momentum or beta1 from `momentum[0]` down to `momentum[1]`).

    `module`, its optimizer's settings and every RNG are as they were afterwards; param
    groups keep their LR ratios (the suggestion is the largest group's LR) and their weight
    decays (with `weight_decay`, each group that decays gets it instead). Under DDP the
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
    check_hyperparameters(weight_decay=weight_decay)
    sweep = _Sweep(weight_decay, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                   mode=mode, momentum=momentum)
    model = copy.deepcopy(module)  # Lightning's __getstate__ leaves the trainer behind
    with isolated_rng(seed), tempfile.TemporaryDirectory() as root, _quiet():
        trainer = pl.Trainer(max_steps=num_steps, max_epochs=-1, callbacks=[sweep],
                             logger=False, enable_checkpointing=False,
                             accumulate_grad_batches=1, limit_val_batches=0,
                             num_sanity_val_steps=0, default_root_dir=root,
                             enable_progress_bar=False, enable_model_summary=False,
                             **trainer_kwargs)
        trainer.fit(model, datamodule=datamodule, train_dataloaders=train_dataloaders)
        leave_at_exit()  # a group Lightning made, left alive, can abort the exit
    if sweep.record is None:
        raise DisciplinedError("the range test's Trainer never started training (no "
                               "training batches?)")
    loader = trainer.train_dataloader
    batch_size = getattr(loader, "batch_size", None)
    return range_test_result([sweep.record.curve(sweep.stop, seed)], source="train",
                             mode=mode, start_lr=start_lr, end_lr=end_lr,
                             batch_size=batch_size if isinstance(batch_size, int) else None,
                             world_size=trainer.world_size)


# --- tune on a LightningModule ----------------------------------------------------------------

# what a trial's Trainer sets itself; the task's trainer_kwargs may not
_TRIAL_OWNS = ("max_steps", "max_epochs", "max_time", "min_steps", "min_epochs", "callbacks",
               "logger", "enable_checkpointing", "val_check_interval",
               "check_val_every_n_epoch", "limit_train_batches", "limit_val_batches",
               "num_sanity_val_steps", "default_root_dir", "enable_progress_bar")


class _Trial(pl.Callback):
    """A trial inside a Trainer: the task's optimizer checked against what it declared, each
    step and each validation into a `Recorder`; a diverged loss (or a spent budget in
    seconds) stops the fit."""

    def __init__(self, recorder: Recorder, runner: _LightningRunner) -> None:
        self.recorder, self.runner = recorder, runner
        self._began, self._steps = 0.0, 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_optimizer(_one_optimizer(trainer, "tune"), self.runner.optimizer,
                        type(pl_module).__name__)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self.recorder.batch_started(trainer.optimizers[0])

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):  # divided by the accumulation: undone here
            mean = trainer.strategy.reduce(loss.detach().float(), reduce_op="mean")
            self.recorder.batch_loss(float(mean) * trainer.accumulate_grad_batches)
        stepped = trainer.global_step > self._steps  # an optimizer step ended
        self._steps = trainer.global_step
        if stepped and not self.recorder.stepped(trainer.global_step - 1):
            trainer.should_stop = True

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._began = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        took = time.perf_counter() - self._began
        logged = trainer.callback_metrics
        runner = self.runner
        if runner.monitor not in logged:
            raise TaskError(
                f"{type(pl_module).__name__}.validation_step logs no {runner.monitor!r} "
                f"(it logs: {', '.join(sorted(logged)) or 'nothing'}): log the validation "
                f"loss with self.log({runner.monitor!r}, loss), or name it in "
                f"task(monitor=...)")
        metric = None
        if runner.metric is not None:
            if runner.metric not in logged:
                raise TaskError(f"{type(pl_module).__name__} logs no {runner.metric!r}, the "
                                f"task's metric (it logs: {', '.join(sorted(logged))})")
            metric = float(logged[runner.metric])
        self.recorder.evaluated(float(logged[runner.monitor]), metric, took)


def _accelerator(device: str | None) -> dict[str, Any]:
    """Our device names as a Trainer's accelerator and devices (None: the task's own)."""
    if device is None:
        return {}
    kind, _, index = device.partition(":")
    accelerator = {"cuda": "gpu"}.get(kind, kind)
    return {"accelerator": accelerator, "devices": [int(index)] if index else 1}


@dataclasses.dataclass(frozen=True)
class _LightningRunner:
    """A LightningModule and its DataModule, trained by Lightning for the recipe: each call
    builds both afresh under the spec's seed."""

    module: Callable[[], pl.LightningModule]
    datamodule: Callable[[], pl.LightningDataModule]
    optimizer: OptimizerKind
    monitor: str
    metric: str | None
    trainer_kwargs: Mapping[str, Any]
    framework: str = "Lightning"
    lr_needs_runs: bool = False

    @functools.cached_property
    def _data(self) -> tuple[int, int, int, int, int]:
        """The DataModule's batch size, training batches, training samples, validation
        samples and validation batch size."""
        dm = self.datamodule()
        with isolated_rng(0), _quiet():
            dm.prepare_data()
            dm.setup("fit")
            train, val = dm.train_dataloader(), dm.val_dataloader()
        val = val[0] if isinstance(val, list | tuple) else val
        for loader, which in ((train, "train_dataloader"), (val, "val_dataloader")):
            if not isinstance(loader, DataLoader) or not isinstance(loader.batch_size, int):
                raise TaskError(f"{type(dm).__name__}.{which}() must return a DataLoader with "
                                f"a batch_size, got {type(loader).__name__}")
        return (train.batch_size, len(train), len(train.dataset), len(val.dataset),
                val.batch_size)

    def _accumulate(self) -> int:
        return int(self.trainer_kwargs.get("accumulate_grad_batches", 1))

    def batch_size(self) -> int:
        return self._data[0]

    def steps_per_epoch(self, batch_size: int) -> int:
        own, batches, samples, _, _ = self._data
        if batch_size != own:
            batches = math.ceil(samples / batch_size)
        return max(1, math.ceil(batches / self._accumulate()))

    def val_samples(self) -> int:
        return self._data[3]

    def _datamodule(self, batch_size: int | None) -> pl.LightningDataModule:
        dm = self.datamodule()
        if batch_size is not None and batch_size != self.batch_size():
            if not hasattr(dm, "batch_size"):
                raise TaskError(f"{type(dm).__name__} has no batch_size attribute to set "
                                f"{batch_size} in; train at its own {self.batch_size()}")
            dm.batch_size = batch_size
        return dm

    def _fit(self, spec: TrialSpec, *, steps: int, eval_every: int, eval_batches: float,
             recorder: Recorder, device: str | None, progress: bool
             ) -> tuple[pl.LightningModule, pl.Trainer, pl.LightningDataModule]:
        check_trial(spec, self.framework)
        module, dm = self.module(), self._datamodule(spec.batch_size)
        cycle = OneCycle(spec.max_lr, momentum=spec.momentum, policy=spec.policy,
                         cycle_momentum=spec.cycle_momentum, weight_decay=spec.weight_decay)
        with tempfile.TemporaryDirectory() as root, _quiet():
            trainer = pl.Trainer(
                max_steps=steps, max_epochs=-1, callbacks=[cycle, _Trial(recorder, self)],
                val_check_interval=eval_every * self._accumulate(),
                check_val_every_n_epoch=None, limit_val_batches=eval_batches,
                num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                default_root_dir=root, enable_progress_bar=progress,
                enable_model_summary=False,
                **{**self.trainer_kwargs, **_accelerator(device)})
            trainer.fit(module, datamodule=dm)
            leave_at_exit()
            if not recorder.stop and not recorder.evaluated_last() and eval_batches:
                trainer.validate(module, datamodule=dm, verbose=False)
        return module, trainer, dm

    def _eval_batches(self, samples: int | None) -> float:
        if samples is None or samples >= self.val_samples():
            return 1.0
        return max(1, math.ceil(samples / self._data[4]))

    def train(self, spec: TrialSpec, *, device: str | None,
              progress: bool) -> tuple[History, nn.Module]:
        per_epoch = self.steps_per_epoch(spec.batch_size or self.batch_size())
        steps = spec.budget.total_steps(per_epoch)
        recorder = Recorder(spec.budget.seconds)
        with isolated_rng(spec.seed):
            module, _, _ = self._fit(spec, steps=steps, eval_every=evals_every(spec, steps),
                                     eval_batches=self._eval_batches(spec.eval_samples),
                                     recorder=recorder, device=device, progress=progress)
        batch = (spec.batch_size or self.batch_size()) * self._accumulate()
        return recorder.finish(per_epoch, batch), module

    def range_test(self, *, weight_decay: float, momentum: tuple[float, float] | None,
                   seed: int, device: str | None, num_steps: int, start_lr: float,
                   end_lr: float, mode: Mode) -> RangeTestResult:
        kwargs = {k: v for k, v in self.trainer_kwargs.items() if k not in _SWEEP_OWNS}
        with isolated_rng(seed):
            module, dm = self.module(), self._datamodule(None)
        return range_test(module, dm, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                          mode=mode, momentum=momentum, seed=seed, weight_decay=weight_decay,
                          **{**kwargs, **_accelerator(device)})

    def measure(self, spec: TrialSpec, *, steps: int, eval_samples: int,
                device: str | None) -> tuple[float, float, float]:
        total = steps + MEASURE_SKIP
        samples = min(eval_samples, self.val_samples())
        batches = self._eval_batches(samples)
        recorder = Recorder()
        with isolated_rng(spec.seed):
            self._fit(spec.with_(budget=Budget(steps=total)), steps=total, eval_every=total,
                      eval_batches=batches, recorder=recorder, device=device, progress=False)
        return recorder.speeds(samples if batches == 1.0 else int(batches) * self._data[4])


def task(module: Callable[[], pl.LightningModule],
         datamodule: Callable[[], pl.LightningDataModule], *,
         optimizer: OptimizerKind = "sgd", monitor: str = "val_loss",
         metric: str | None = None, epochs: float | None = None,
         **trainer_kwargs: Any) -> Task:
    """A task for `disciplined tune` (and `train`, `find-lr`) that Lightning trains: define
    `TASK = task(MyModule, MyDataModule)` in a task file.

    `module()` and `datamodule()` build fresh ones (each trial trains its own, seeded);
    `configure_optimizers` returns one optimizer of the kind `optimizer` names ("sgd" with
    momentum, or "adamw") and no scheduler: tune sets its LR policy, momentum (beta1) and
    weight decay. `validation_step` logs the validation loss as `monitor`; `metric` names a
    logged accuracy (a fraction) to report beside it. `epochs` is the final training's
    length when tune is given no budget; `trainer_kwargs` go to every Trainer (accelerator,
    devices, strategy, precision, accumulate_grad_batches, gradient_clip_val)."""
    if taken := sorted(set(trainer_kwargs) & set(_TRIAL_OWNS)):
        raise TypeError(f"task() sets {', '.join(taken)} of each trial's Trainer itself")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    runner = _LightningRunner(module, datamodule, optimizer, monitor, metric,
                              dict(trainer_kwargs))
    return framework_task(runner, getattr(module, "__name__", "lightning"), module,
                          optimizer=optimizer, metric=metric, epochs=epochs)
