"""Trials: a plain, picklable specification in, a frozen result out (Optuna's vocabulary),
and the one factory that turns a specification into a ready `Trainer`.

A trial trains one complete configuration from the task's seeded initial weights, in the
seeded data order, so trials that differ in one hyper-parameter differ in nothing else.
Everything that trains a task (`train`, the short runs, the final training, Ray Tune) builds
its trainer with `build_trainer`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from . import distributed
from .defaults import MOMENTUM, WEIGHT_DECAY
from .diagnose import PAST_ITS_BEST, Diagnosis, diagnose
from .engine import AMP_CHOICES, History, Trainer, build_optimizer, num_samples, steps_per_epoch
from .hyper import HyperScheduler
from .policies import Policy, check_hyperparameters, check_policy, policy_schedules
from .tasks import Task, load_task, loader_batch

State = Literal["complete", "failed", "lost"]
Keep = Literal["last", "best"]
# Evaluations per trial when the spec does not say: enough for diagnose() to read a trend.
EVALS_PER_TRIAL = 12
# Short runs evaluate on a fixed subset of this many validation samples: twelve passes over
# Fashion-MNIST's 10,000 test images cost as much as the training of a short run.
EVAL_SAMPLES = 2048


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long a trial trains: the first of epochs, optimizer steps or wall seconds."""

    epochs: float | None = None
    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs is None and self.steps is None and self.seconds is None:
            raise ValueError("a budget needs epochs, steps or seconds")
        for name in ("epochs", "steps", "seconds"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"a budget's {name} must be > 0 and finite, got {value}")

    def total_steps(self, per_epoch: int) -> int:
        """Optimizer steps the schedules span: the step or epoch budget, whichever is less
        (a seconds-only budget must come with steps, which the batch-size search computes
        from the measured throughput)."""
        candidates = []
        if self.steps is not None:
            candidates.append(self.steps)
        if self.epochs is not None:
            candidates.append(math.ceil(self.epochs * per_epoch))
        if not candidates:
            raise ValueError("a trial's schedules need a step or epoch budget to span")
        return max(2, min(candidates))


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """Everything one trial needs; plain data, so any executor can ship it.

    `eval_every` is in optimizer steps (None: EVALS_PER_TRIAL evaluations over the run);
    `eval_samples` caps the validation samples each evaluation reads (None: all of them);
    `save_model` is a file the trained weights are written to (so that a full-length trial
    can be kept as the final training instead of being trained again); `keep` is which
    weights the trained model ends with: the last step's, or ("best") those of its lowest
    validation loss where the run's diagnosis says its end is not its best (overfitting,
    unstable or diverged) and, for a task with a metric, they score no lower by it
    (`_keeps`: a final training worse at its end than on its way is not delivered at its
    end; our engine's trainings only, a framework's runner keeps its last); `amp` is the
    autocast ("auto": bf16 on a GPU that supports it, else none; "off"; "bf16"; "fp16") and
    `compile` runs the training forward through torch.compile."""

    task: str
    max_lr: float
    budget: Budget
    policy: Policy = "one-cycle"
    momentum: tuple[float, float] = MOMENTUM
    cycle_momentum: bool = True
    weight_decay: float = WEIGHT_DECAY
    batch_size: int | None = None
    seed: int = 0
    eval_every: int | None = None
    eval_samples: int | None = EVAL_SAMPLES
    data_dir: str | None = None
    label: str = ""
    save_model: str | None = None
    keep: Keep = "last"
    amp: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        check_policy(self.policy)
        check_hyperparameters(max_lr=self.max_lr, momentum=self.momentum,
                              weight_decay=self.weight_decay, batch_size=self.batch_size)
        if self.keep not in ("last", "best"):
            raise ValueError(f"keep must be 'last' or 'best', got {self.keep!r}")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")

    def with_(self, **changes: Any) -> TrialSpec:
        return dataclasses.replace(self, **changes)

    def trains_like(self, other: TrialSpec) -> bool:
        """Whether both train the same weights (they may differ in label, where the weights
        go and which of them the model ends with)."""
        def plain(spec: TrialSpec) -> TrialSpec:
            return spec.with_(label="", save_model=None, keep="last")

        return plain(self) == plain(other)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["momentum"] = list(self.momentum)  # as JSON reads it back
        # journals written before these fields keep their keys while they hold the default
        for name, default in (("save_model", None), ("keep", "last"), ("amp", "auto"),
                              ("compile", False)):
            if out[name] == default:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSpec:
        fields = dict(data)
        fields["budget"] = Budget(**fields["budget"])
        fields["momentum"] = tuple(fields["momentum"])
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class Kept:
    """The evaluation whose weights a run ended with instead of its last step's."""

    step: int
    val_loss: float
    val_metric: float | None


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """A finished trial: `state` is "complete", "failed" (then `error` says why) or "lost"
    (its Ray worker died each time it was tried: infrastructure, not the trial's outcome);
    `worker` names the Ray node that ran it ("" when it ran in this process); `kept` is the
    evaluation whose weights the model ended with, where the spec asked for the best and it
    was not the last (`val_loss` and `val_metric` stay the end's: the hyper-parameters are
    judged by them; `model_val_loss` is the model's)."""

    spec: TrialSpec
    state: State
    error: str | None
    history: History | None
    diagnosis: Diagnosis | None
    val_loss: float | None
    val_metric: float | None
    steps: int
    seconds: float
    worker: str = ""
    kept: Kept | None = None

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def model_val_loss(self) -> float | None:
        """The validation loss of the weights the run ended with."""
        return self.val_loss if self.kept is None else self.kept.val_loss

    @property
    def model_val_metric(self) -> float | None:
        return self.val_metric if self.kept is None else self.kept.val_metric

    @classmethod
    def failed(cls, spec: TrialSpec, state: State, error: str,
               seconds: float = 0.0) -> TrialResult:
        """A trial that produced no training (failed, or lost with its worker)."""
        return cls(spec, state, error, None, None, None, None, 0, seconds)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["diagnosis"] = None if self.diagnosis is None else self.diagnosis.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        history = None if data["history"] is None else History.from_dict(data["history"])
        diagnosis = None if data["diagnosis"] is None else \
            Diagnosis.from_dict(data["diagnosis"])
        return cls(TrialSpec.from_dict(data["spec"]), data["state"], data["error"], history,
                   diagnosis, data["val_loss"], data["val_metric"], data["steps"],
                   data["seconds"], data.get("worker", ""),
                   None if data.get("kept") is None else Kept(**data["kept"]))


def build_trainer(spec: TrialSpec, *, task: Task | None = None, device: str | None = None,
                  progress: bool = False, evaluate: bool = True,
                  on_eval: Callable[[int, float, float | None], None] | None = None
                  ) -> tuple[Trainer, int]:
    """The ready trainer for a spec, its schedules passed in, and the steps they span.

    `task` saves loading it again when the caller has it; `evaluate=False` trains without
    validation (to measure speed); `on_eval(step, val_loss, val_metric)` sees each
    evaluation."""
    task = task or load_task(spec.task, data_dir=spec.data_dir)
    train, val = task.datasets()
    batch_size = loader_batch(train, spec.batch_size, task.source, "trained") or \
        spec.batch_size or task.batch_size
    per_epoch = steps_per_epoch(train, batch_size)
    steps = spec.budget.total_steps(per_epoch)
    model = task.model(spec.seed)
    optimizer = build_optimizer(task.optimizer, model, lr=spec.max_lr, momentum=spec.momentum[0],
                                weight_decay=spec.weight_decay)
    lr, momentum = policy_schedules(spec.policy, steps, spec.max_lr, momentum=spec.momentum,
                                    steps_per_epoch=per_epoch,
                                    cycle_momentum=spec.cycle_momentum)
    trainer = Trainer(model, optimizer, task.loss_fn, train, val if evaluate else None,
                      scheduler=HyperScheduler(optimizer, lr=lr, momentum=momentum),
                      metric=task.metric, batch_size=batch_size,
                      eval_every=spec.eval_every or max(1, steps // EVALS_PER_TRIAL),
                      eval_samples=spec.eval_samples, seed=spec.seed, device=device,
                      progress=progress, on_eval=on_eval, label=spec.label, amp=spec.amp,
                      compile=spec.compile)
    return trainer, steps


def result_from(spec: TrialSpec, history: History, seconds: float) -> TrialResult:
    """The complete result of a training that recorded `history`."""
    return TrialResult(
        spec, "complete", None, history, diagnose(history),
        history.val_loss[-1] if history.val_loss else None,
        history.val_metric[-1] if history.val_metric else None,
        len(history.step), seconds)


def epoch_steps(task: Task, batch_size: int) -> int:
    """Optimizer steps per epoch of `task` at `batch_size`, whoever trains it."""
    if task.runner is not None:
        return task.runner.steps_per_epoch(batch_size)
    return steps_per_epoch(task.datasets()[0], batch_size)


def val_samples(task: Task) -> int:
    """Samples in `task`'s validation data, whoever trains it."""
    if task.runner is not None:
        return task.runner.val_samples()
    return num_samples(task.datasets()[1])


def train(spec: TrialSpec, *, task: Task | None = None, device: str | None = None,
          progress: bool = False) -> tuple[TrialResult, torch.nn.Module]:
    """Train one spec to the end of its budget: its result and the trained model. Errors
    are raised (use `run_trial` to record them instead). A framework's task is trained by
    its runner, everything else by our engine."""
    start = time.perf_counter()
    task = task or load_task(spec.task, data_dir=spec.data_dir)
    lowest = None
    if task.runner is not None:
        history, model = task.runner.train(spec, device=device, progress=progress)
    else:
        trainer, steps = build_trainer(spec, task=task, device=device, progress=progress)
        if spec.keep == "best":
            trainer.on_eval = lowest = _Lowest(trainer.model)
        history, model = trainer.run(steps=steps, seconds=spec.budget.seconds), trainer.model
    result = result_from(spec, history, time.perf_counter() - start)
    if lowest is not None and lowest.state is not None and _keeps(result, lowest):
        model.load_state_dict(lowest.state)
        result = dataclasses.replace(result, kept=Kept(lowest.step, lowest.loss, lowest.metric))
    if spec.save_model is not None and distributed.world().is_main:
        # a worker that cannot write there (another Ray node) keeps its result all the same
        with contextlib.suppress(OSError):
            Path(spec.save_model).parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), spec.save_model)
    return result, model


class _Lowest:
    """Watches a training's evaluations and copies its model's weights to the CPU at each
    new lowest validation loss (into the same buffers each time)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.loss, self.step = model, math.inf, -1
        self.metric: float | None = None
        self.state: dict[str, Any] | None = None

    def __call__(self, step: int, loss: float, metric: float | None) -> None:
        if not (math.isfinite(loss) and loss < self.loss):
            return
        self.loss, self.step, self.metric = loss, step, metric
        now = self.model.state_dict()
        if self.state is None:
            self.state = {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor)
                          else copy.deepcopy(v) for k, v in now.items()}
            return
        for k, v in now.items():
            if isinstance(v, torch.Tensor):
                self.state[k].copy_(v.detach())
            else:
                self.state[k] = copy.deepcopy(v)


def _keeps(result: TrialResult, lowest: _Lowest) -> bool:
    """Whether a run that watched its lowest validation loss ends with those weights: where
    that evaluation was not its last, the diagnosis says its end is not its best (it
    overfit, was unstable or diverged), and, for a task with a metric, the evaluation scores
    no lower by it than the end (a classifier's loss can rise while its accuracy still
    climbs: on the zoo's tabular_mlp the lowest loss's weights scored 2.7 points under the
    end's)."""
    steps = [] if result.history is None else result.history.eval_step
    verdict = None if result.diagnosis is None else result.diagnosis.verdict
    return bool(steps) and lowest.step != steps[-1] and \
        verdict in PAST_ITS_BEST and \
        (result.val_metric is None or lowest.metric is None
         or lowest.metric >= result.val_metric)


def run_trial(spec: TrialSpec, *, device: str | None = None, progress: bool = False,
              task: Task | None = None) -> TrialResult:
    """Train one spec; any error becomes a failed result, recorded, never raised.
    `progress` shows a live bar (step, training and validation loss); `task` is the spec's
    task already loaded (None: load it)."""
    start = time.perf_counter()
    try:
        return train(spec, task=task, device=device, progress=progress)[0]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # a failed trial is data, not a crash
        message = f"{type(err).__name__}: {err}"
        if not isinstance(err, ValueError | MemoryError | torch.OutOfMemoryError):
            message += "\n" + traceback.format_exc(limit=3)
        return TrialResult.failed(spec, "failed", message, time.perf_counter() - start)
