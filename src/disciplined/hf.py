"""Hugging Face `Trainer`: our 1cycle with cyclical beta1 in place of its schedule, and our
range test on a `model_init`. Needs `pip install 'disciplined[hf]'`.

    from disciplined.hf import OneCycleTrainer, range_test

    found = range_test(model_init, train_dataset, args)   # a fresh model: nothing changes
    print(found.reading.why)                              # conclusive or not, and why
    args.learning_rate = found.max_lr                     # the 1cycle's peak
    OneCycleTrainer(model_init=model_init, args=args, train_dataset=train_dataset).train()

`OneCycleTrainer` keeps the Trainer's optimizer (AdamW, with biases and LayerNorm weights in
a group without weight decay: that group stays at 0) and replaces only its scheduler; the
scheduler is saved in checkpoints as {"step": n} and resumed from them. A task file with
`TASK = task(model_init, datasets, args)` is a task `disciplined tune` runs the whole recipe
on, every trial a fresh model and OneCycleTrainer, the LR always decided by short runs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from transformers import (
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.training_args import OptimizerNames

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
    sweep_scheduler,
)
from .policies import check_hyperparameters, check_policy
from .range_test import Mode, RangeTestResult, SweepRecord, range_test_result
from .tasks import OptimizerKind, Task, TaskError
from .trials import Budget, TrialSpec


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


@dataclasses.dataclass(frozen=True)
class _Scale:
    """How many times the losses the Trainer reports exceed the mean loss: its training
    loss (one per optimizer step) and its evaluation loss."""

    train: float = 1.0
    eval: float = 1.0


def _loss_scale(trainer: Trainer, dataset: Any) -> _Scale:
    """The Trainer's losses against the mean loss, for the one case where they differ. When
    a model takes `**kwargs` and the batch has labels, the Trainer passes it the count of
    labels over all processes and micro-batches, and expects a loss already divided by it:
    it multiplies each process's loss by the number of processes (with
    `average_tokens_across_devices`, the default) and no longer divides by the accumulation
    steps. A model whose loss is a local mean ignores the count (a sequence classifier
    does): its evaluation loss comes out that many processes too large, its training loss
    that many processes times accumulation steps (transformers #35078). Told apart by the
    loss of two samples given two counts; every process builds the same model, so all
    agree."""
    args = trainer.args
    world, accumulation = trainer.accelerator.num_processes, args.gradient_accumulation_steps
    if (world == 1 and accumulation == 1) or not (
            trainer.model_accepts_loss_kwargs or trainer.compute_loss_func):
        return _Scale()
    collate = trainer._get_collator_with_removed_columns(trainer.data_collator, "training")
    batch = trainer._prepare_inputs(collate([dataset[i] for i in range(min(2, len(dataset)))]))
    if "labels" not in batch:  # the Trainer counts nothing, so scales nothing
        return _Scale()
    count = (batch["labels"] != -100).sum()
    model = trainer.model
    if model is None:
        raise RuntimeError("the Trainer has no model yet")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # a copy each: with label smoothing, compute_loss pops labels
            once = trainer.compute_loss(model, dict(batch), num_items_in_batch=count)
            twice = trainer.compute_loss(model, dict(batch), num_items_in_batch=2 * count)
    finally:
        model.train(was_training)
    if not math.isclose(float(cast(torch.Tensor, once)), float(cast(torch.Tensor, twice)),
                        rel_tol=1e-4):
        return _Scale()  # the model divides by the count it is given
    processes = world if args.average_tokens_across_devices else 1
    # None, or absent in older transformers (5.17 has no such attribute): the Trainer then
    # scales when the model takes the count, as it does here
    scaled_for_accumulation = getattr(trainer, "loss_is_scaled_for_ga", None)
    steps = accumulation if scaled_for_accumulation is None or scaled_for_accumulation else 1
    return _Scale(train=float(processes * steps), eval=float(processes))


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
        self.scale = _loss_scale(self, self.train_dataset).train  # accumulation is 1 here
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
            self.stop = self.record.add(len(self.record.raw), float(mean) / self.scale)
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
        leave_at_exit()  # a group the Trainer made, left alive, can abort the exit
    if trainer.record is None:
        raise DisciplinedError("the range test's Trainer never started training (an empty "
                               "train_dataset?)")
    return range_test_result([trainer.record.curve(trainer.stop, seed)], source="train",
                             mode=mode, start_lr=start_lr, end_lr=end_lr,
                             batch_size=sweep_args.per_device_train_batch_size,
                             world_size=sweep_args.world_size)


# --- tune on a model_init ---------------------------------------------------------------------


class _Trial(TrainerCallback):
    """A trial inside a Trainer: each step's LR, momentum and logged loss and each
    evaluation into a `Recorder`; a diverged loss (or a spent budget in seconds) ends the
    training."""

    def __init__(self, recorder: Recorder, runner: _HFRunner) -> None:
        self.recorder, self.runner = recorder, runner
        self._checked = False
        self.scale = _Scale()  # the Trainer's losses over the mean loss

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                      **kwargs: Any) -> Any:
        if not self._checked:
            check_optimizer(optimizer, self.runner.optimizer, "the Trainer")
            self._checked = True
        self.recorder.batch_started(optimizer)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
               **kwargs: Any) -> Any:
        if logs and "loss" in logs:  # logging_steps=1: this step's loss, over all processes
            self.recorder.batch_loss(float(logs["loss"]) / self.scale.train)
            if not self.recorder.stepped(state.global_step - 1):
                control.should_training_stop = True
        return control

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None,
                    **kwargs: Any) -> Any:
        runner, metrics = self.runner, metrics or {}
        if "eval_loss" not in metrics:
            raise TaskError("the Trainer's evaluate() gave no eval_loss (does the model "
                            "return a loss when the batch has labels?)")
        metric = None
        if runner.metric is not None:
            key = runner.metric if runner.metric.startswith("eval_") else \
                f"eval_{runner.metric}"
            if key not in metrics:
                raise TaskError(f"evaluate() gave no {key!r}, the task's metric (it gave "
                                f"{', '.join(sorted(metrics))}): return it from "
                                "compute_metrics")
            metric = float(metrics[key])
        self.recorder.evaluated(float(metrics["eval_loss"]) / self.scale.eval, metric,
                                float(metrics.get("eval_runtime", 0.0)))


class _Bar(ProgressCallback):
    """The Trainer's progress bar without its log lines: a trial logs every step's loss for
    the history, not for the screen."""

    def on_log(self, *args: Any, **kwargs: Any) -> None:
        return None


def _device(device: str | None) -> dict[str, Any]:
    """Our device names as TrainingArguments (None: the task's own)."""
    return {} if device is None else {"use_cpu": device == "cpu"}


def _subset(dataset: Any, n: int | None) -> Any:
    """The first `n` samples (a datasets.Dataset selects them itself)."""
    if n is None or n >= len(dataset):
        return dataset
    if hasattr(dataset, "select"):
        return dataset.select(range(n))
    return torch.utils.data.Subset(dataset, range(n))


@dataclasses.dataclass(frozen=True)
class _HFRunner:
    """A `model_init`, datasets and TrainingArguments, trained by the Trainer for the recipe:
    each trial a fresh model and Trainer, read by `evaluate()["eval_loss"]`."""

    model_init: Callable[[], nn.Module]
    datasets: Callable[[], tuple[Any, Any]]
    args: TrainingArguments
    data_collator: Any
    compute_metrics: Callable[[Any], dict[str, float]] | None
    optimizer: OptimizerKind
    metric: str | None
    framework: str = "Hugging Face"
    lr_needs_runs: bool = True  # range tests misjudge transformers: short runs decide

    @functools.cached_property
    def _data(self) -> tuple[Any, Any]:
        with isolated_rng(0):
            train, val = self.datasets()
        for data, which in ((train, "training"), (val, "evaluation")):
            if not hasattr(data, "__len__") or len(data) == 0:
                raise TaskError(f"the task's {which} dataset must be a non-empty dataset "
                                f"with a length, got {type(data).__name__}")
        return train, val

    def batch_size(self) -> int:
        return int(self.args.per_device_train_batch_size)

    def steps_per_epoch(self, batch_size: int) -> int:
        batches = math.ceil(len(self._data[0]) / (batch_size * self.args.world_size))
        return max(1, math.ceil(batches / self.args.gradient_accumulation_steps))

    def val_samples(self) -> int:
        return len(self._data[1])

    def _trainer(self, spec: TrialSpec, root: str, *, steps: int, eval_every: int,
                 eval_samples: int | None, recorder: Recorder, device: str | None,
                 progress: bool) -> OneCycleTrainer:
        check_trial(spec, self.framework)
        train, val = self._data
        args = dataclasses.replace(
            self.args, output_dir=root, learning_rate=spec.max_lr,
            weight_decay=spec.weight_decay, max_steps=steps,
            per_device_train_batch_size=spec.batch_size or self.batch_size(),
            eval_strategy="steps", eval_steps=eval_every, save_strategy="no",
            logging_strategy="steps", logging_steps=1, logging_nan_inf_filter=False,
            report_to="none", load_best_model_at_end=False, warmup_steps=0,
            seed=spec.seed, data_seed=spec.seed, disable_tqdm=not progress,
            **_device(device))
        trial = _Trial(recorder, self)
        trainer = OneCycleTrainer(
            model_init=self.model_init, args=args, train_dataset=train,
            eval_dataset=_subset(val, eval_samples), data_collator=self.data_collator,
            compute_metrics=self.compute_metrics, callbacks=[trial],
            momentum=spec.momentum, policy=spec.policy, cycle_momentum=spec.cycle_momentum)
        trial.scale = _loss_scale(trainer, train)
        trainer.remove_callback(PrinterCallback)  # each step's log line is not news
        if progress:
            trainer.remove_callback(ProgressCallback)
            trainer.add_callback(_Bar())
        return trainer

    def train(self, spec: TrialSpec, *, device: str | None,
              progress: bool) -> tuple[History, nn.Module]:
        per_epoch = self.steps_per_epoch(spec.batch_size or self.batch_size())
        steps = spec.budget.total_steps(per_epoch)
        recorder = Recorder(spec.budget.seconds)
        with isolated_rng(spec.seed), tempfile.TemporaryDirectory() as root:
            trainer = self._trainer(spec, root, steps=steps,
                                    eval_every=evals_every(spec, steps),
                                    eval_samples=spec.eval_samples, recorder=recorder,
                                    device=device, progress=progress)
            trainer.train()
            leave_at_exit()
            if not recorder.stop and not recorder.evaluated_last():
                trainer.evaluate()
        batch = trainer.args.per_device_train_batch_size * trainer.args.world_size * \
            trainer.args.gradient_accumulation_steps
        if trainer.model is None:
            raise RuntimeError("the Trainer lost its model")
        return recorder.finish(per_epoch, batch), trainer.model

    def range_test(self, *, weight_decay: float, momentum: tuple[float, float] | None,
                   seed: int, device: str | None, num_steps: int, start_lr: float,
                   end_lr: float, mode: Mode) -> RangeTestResult:
        args = dataclasses.replace(self.args, weight_decay=weight_decay,
                                   **_device(device))
        return range_test(self.model_init, self._data[0], args,
                          data_collator=self.data_collator, start_lr=start_lr, end_lr=end_lr,
                          num_steps=num_steps, mode=mode, momentum=momentum, seed=seed)

    def measure(self, spec: TrialSpec, *, steps: int, eval_samples: int,
                device: str | None) -> tuple[float, float, float]:
        total = steps + MEASURE_SKIP
        samples = min(eval_samples, self.val_samples())
        recorder = Recorder()
        with isolated_rng(spec.seed), tempfile.TemporaryDirectory() as root:
            trainer = self._trainer(spec.with_(budget=Budget(steps=total)), root, steps=total,
                                    eval_every=total, eval_samples=samples, recorder=recorder,
                                    device=device, progress=False)
            trainer.train()
            leave_at_exit()
            if not recorder.eval_took:
                trainer.evaluate()
        return recorder.speeds(samples)


def task(model_init: Callable[[], nn.Module], datasets: Callable[[], tuple[Any, Any]],
         args: TrainingArguments, *, data_collator: Any = None,
         compute_metrics: Callable[[Any], dict[str, float]] | None = None,
         metric: str | None = None, epochs: float | None = None) -> Task:
    """A task for `disciplined tune` (and `train`, `find-lr`) that the Hugging Face Trainer
    trains: define `TASK = task(model_init, datasets, args)` in a task file.

    `model_init()` builds a fresh model (each trial trains its own, seeded by the trial);
    `datasets()` returns (train_dataset, eval_dataset); `args` are the TrainingArguments
    every trial starts from (batch size, optimizer, precision, accumulation): tune sets
    their learning rate, weight decay, length, evaluation and seed, and trains with
    `OneCycleTrainer` (1cycle with cyclical beta1). `metric` names an accuracy (a fraction)
    that `compute_metrics` returns, reported beside the loss; `epochs` is the final
    training's length when tune is given no budget. Because range tests misjudge
    transformers, tune decides the LR here by short runs (the lr stage cannot be left
    out)."""
    if not isinstance(args, TrainingArguments):
        raise TypeError(f"args must be transformers.TrainingArguments, got {type(args)}")
    if metric is not None and compute_metrics is None:
        raise TypeError(f"metric={metric!r} needs compute_metrics to compute it")
    optim = OptimizerNames(args.optim).value
    if not (optim.startswith("sgd") or "adam" in optim):
        raise TypeError(f"tune trains with SGD or Adam/AdamW (the weight decays it tries "
                        f"depend on which); args.optim is {optim!r}")
    optimizer: OptimizerKind = "sgd" if optim.startswith("sgd") else "adamw"
    runner = _HFRunner(model_init, datasets, args, data_collator, compute_metrics, optimizer,
                       metric)
    return framework_task(runner, getattr(model_init, "__name__", "hf"), model_init,
                          optimizer=optimizer, metric=metric, epochs=epochs)
