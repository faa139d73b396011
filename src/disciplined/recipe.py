"""The checklist end to end (Smith 2018, Section 5) as a table of stages: range test, batch
size, momentum, weight decay, a confirming range test, then the final 1cycle training.

Each stage is a small function from a `Context` (the settings, the task, the journal, the
hyper-parameters decided so far, the budget plan) to an `Outcome` (a decision, its reason and
its evidence). `tune` runs the table: resuming a journaled stage, journaling a new one,
telling the progress object and applying the decision are written once, around it. A new
stage is one function and one entry in `STAGE_FUNCTIONS`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import torch

from . import distributed
from .decisions import Decision, Hyper
from .engine import steps_per_epoch
from .errors import DisciplinedError
from .executors import Executor
from .range_test import task_range_test
from .report import write_report, write_train_script
from .searches import batch_size_search, momentum_search, weight_decay_search
from .study import FinalRun, JournalExecutor, Outcome, StageRecord, Study
from .tasks import Task, load_task
from .trials import Budget, TrialResult, TrialSpec, train

StageName = Literal["range_test", "batch_size", "momentum", "weight_decay", "confirm", "final"]
STAGES: tuple[StageName, ...] = get_args(StageName)
DEFAULT_STAGES: tuple[StageName, ...] = ("range_test", "momentum", "weight_decay", "confirm",
                                         "final")
# Final-training epochs when neither the budget nor the task says.
FALLBACK_EPOCHS = 10
# Each short run trains this fraction of the final length (9 short runs ~ 1.5x the final)...
SHORT_FRACTION = 1 / 6
# ... but at least this many steps: fewer leave a 1cycle no room to rise and anneal, and the
# runs end before their losses part (measured on digits: 12-step runs all ended near the
# initial loss and tied).
MIN_SHORT_STEPS = 60
# Short runs in the stages, to split a budget given in minutes.
SHORT_RUNS = {"batch_size": 3, "momentum": 4, "weight_decay": 5}
# The confirming range test's steps, in the planned split.
RANGE_TEST_STEPS = 100


@dataclasses.dataclass(frozen=True)
class Plan:
    """How the budget is spent, fixed once from the first range test's measured speed (a
    resumed study reads it back, so its trials are the same trials)."""

    final_epochs: float
    short_epochs: float
    short_seconds: float
    seconds_by_stage: dict[str, float]

    @property
    def eta(self) -> float:
        """Planned seconds of every stage after the first range test."""
        return sum(self.seconds_by_stage.values())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        return cls(data["final_epochs"], data["short_epochs"], data["short_seconds"],
                   dict(data["seconds_by_stage"]))


class Progress(Protocol):
    """What `tune` tells the person watching; the library itself never prints. With `live`,
    each trial also shows a bar of its steps and losses."""

    live: bool

    def plan(self, plan: Plan) -> None: ...

    def stage(self, name: str, index: int, total: int, eta_seconds: float | None) -> None: ...

    def trial(self, stage: str, result: TrialResult) -> None: ...

    def decided(self, record: StageRecord) -> None: ...


class _Silent:
    live = False

    def plan(self, plan: Plan) -> None:
        pass

    def stage(self, name: str, index: int, total: int, eta_seconds: float | None) -> None:
        pass

    def trial(self, stage: str, result: TrialResult) -> None:
        pass

    def decided(self, record: StageRecord) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the user asked for; a resumed study must ask for the same."""

    task: str
    out: Path
    stages: tuple[StageName, ...]
    budget_epochs: float | None = None
    budget_minutes: float | None = None
    seed: int = 0
    data_dir: str | None = None
    device: str | None = None

    def journal_config(self, world_size: int) -> dict[str, Any]:
        """The settings a resumed study must share (the output folder and device may move)."""
        config: dict[str, Any] = {"task": self.task, "budget_epochs": self.budget_epochs,
                                  "budget_minutes": self.budget_minutes,
                                  "stages": list(self.stages), "seed": self.seed}
        if world_size > 1:  # a study keeps the total batch it was tuned for
            config["world_size"] = world_size
        return config


@dataclasses.dataclass(frozen=True)
class Context:
    """What a stage sees: the settings, the loaded task, the journal, the hyper-parameters
    decided so far and the budget plan (None until the first range test has run)."""

    settings: Settings
    task: Task
    study: Study
    hyper: Hyper
    plan: Plan | None
    progress: Progress
    executor: Executor | None

    def trials(self, stage: str) -> JournalExecutor:
        """Runs a stage's trials through the executor, journaled one by one."""
        return JournalExecutor(self.study, stage, runner=self.executor,
                               device=self.settings.device, live=self.progress.live,
                               on_result=lambda r: self.progress.trial(stage, r))

    def planned(self) -> Plan:
        if self.plan is None:
            raise RuntimeError("the budget is planned after the first range test")
        return self.plan

    def max_lr(self) -> float:
        if self.hyper.max_lr is None:
            raise RuntimeError("max_lr is decided by the first range test")
        return self.hyper.max_lr


# --- the stages --------------------------------------------------------------------------------


def _range_test(ctx: Context) -> Outcome:
    """Max LR by Smith's rule at the hyper-parameters decided so far."""
    h, s = ctx.hyper, ctx.settings
    start = time.perf_counter()
    rt = task_range_test(ctx.task, weight_decay=h.weight_decay, momentum=h.momentum,
                         batch_size=h.batch_size, seed=s.seed, device=s.device)
    if rt.max_lr is None:
        raise DisciplinedError(f"the range test on {s.task} found no decreasing loss; check the "
                               "task (loss, data), or train with an explicit --max-lr")
    curve = rt.runs[0]
    lowest = curve.lr[curve.smoothed.index(min(curve.smoothed))]
    reason = (f"Smith's rule: the loss still falls clearly at {rt.max_lr:.3g}, before its "
              f"minimum near {lowest:.3g}")
    return Outcome(Decision(max_lr=rt.max_lr), reason, range_test=rt,
                   seconds_per_step=(time.perf_counter() - start) / max(1, len(curve.lr)))


def _batch_size(ctx: Context) -> Outcome:
    """Half, the same and twice the task's batch, at equal wall time."""
    s, base = ctx.settings, ctx.hyper.batch_size
    result = batch_size_search(s.task, sizes=[base // 2, base, base * 2],
                               seconds=ctx.planned().short_seconds, seed=s.seed,
                               data_dir=s.data_dir, executor=ctx.trials("batch_size"))
    return Outcome(result.decision, result.reason, search=result)


def _momentum(ctx: Context) -> Outcome:
    h, s = ctx.hyper, ctx.settings
    result = momentum_search(s.task, max_lr=ctx.max_lr(),
                             budget=Budget(epochs=ctx.planned().short_epochs),
                             weight_decay=h.weight_decay, seed=s.seed, data_dir=s.data_dir,
                             batch_size=h.batch_size, executor=ctx.trials("momentum"))
    return Outcome(result.decision, result.reason, search=result)


def _weight_decay(ctx: Context) -> Outcome:
    h, s = ctx.hyper, ctx.settings
    result = weight_decay_search(s.task, max_lr=ctx.max_lr(),
                                 budget=Budget(epochs=ctx.planned().short_epochs),
                                 momentum=h.momentum, seed=s.seed, data_dir=s.data_dir,
                                 batch_size=h.batch_size, executor=ctx.trials("weight_decay"))
    return Outcome(result.decision, result.reason, search=result)


def _final(ctx: Context) -> Outcome:
    """The final 1cycle training at everything decided, on the whole validation set."""
    h, s = ctx.hyper, ctx.settings
    epochs = ctx.planned().final_epochs
    spec = TrialSpec(s.task, max_lr=ctx.max_lr(), budget=Budget(epochs=epochs),
                     momentum=h.momentum, weight_decay=h.weight_decay,
                     batch_size=h.batch_size, seed=s.seed, data_dir=s.data_dir,
                     label="final", eval_samples=None)
    result, model = train(spec, task=ctx.task, device=s.device)
    if distributed.world().is_main:
        torch.save(model.state_dict(), s.out / "model.pt")
    ctx.study.record_trial("final", result)
    ctx.progress.trial("final", result)
    metric = "" if result.val_metric is None else f", metric {result.val_metric:.4g}"
    verdict = result.diagnosis.verdict if result.diagnosis else "-"
    reason = (f"1cycle for {epochs:g} epochs ({result.steps} steps): validation loss "
              f"{result.val_loss:.4g}{metric} ({verdict})")
    return Outcome(Decision(), reason, final=FinalRun(result.val_loss, result.val_metric,
                                                      result.steps, epochs, result.seconds))


STAGE_FUNCTIONS: dict[StageName, Callable[[Context], Outcome]] = {
    "range_test": _range_test,
    "batch_size": _batch_size,
    "momentum": _momentum,
    "weight_decay": _weight_decay,
    "confirm": _range_test,  # the same test at the chosen momentum and weight decay
    "final": _final,
}


# --- around the table ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """What `tune` decided and measured; `summary` is summary.json's content."""

    directory: Path
    summary: dict[str, Any]
    reused_trials: int

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.summary["hyperparameters"])

    @property
    def hyper(self) -> Hyper:
        return Hyper.from_dict(self.summary["hyperparameters"])


def stage_list(stages: Sequence[str] | None) -> tuple[StageName, ...]:
    """The stages to run, in the checklist's order; the first range test always runs."""
    chosen = list(DEFAULT_STAGES if stages is None else stages)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
    chosen.append("range_test")  # every later stage needs the max_lr it finds
    return tuple(s for s in STAGES if s in chosen)  # the checklist's order, whatever was given


def tune(task_name: str, *, out: str | Path = "runs/tune", budget_epochs: float | None = None,
         budget_minutes: float | None = None, stages: Sequence[str] | None = None,
         resume: bool = False, seed: int = 0, data_dir: str | None = None,
         device: str | None = None, progress: Progress | None = None,
         executor: Executor | None = None) -> StudyResult:
    """Choose LR, batch size, momentum and weight decay the disciplined way, then train.

    `budget_epochs` is the final training's length (short runs take 1/6 of it each);
    `budget_minutes` instead sizes everything to a wall-clock budget from the measured speed;
    with neither, the task's own `epochs` (else FALLBACK_EPOCHS). With `resume`, finished
    stages and trials come from `out/study.db`. `executor` runs each stage's short runs
    (default: one after another here; a `RayExecutor` runs them concurrently on a cluster);
    their results go to the journal either way. Writes summary.json, report.html, train.py
    and model.pt into `out`.
    """
    if budget_epochs is not None and budget_epochs <= 0:
        raise ValueError(f"budget_epochs must be > 0, got {budget_epochs}")
    if budget_minutes is not None and budget_minutes <= 0:
        raise ValueError(f"budget_minutes must be > 0, got {budget_minutes}")
    if budget_epochs is not None and budget_minutes is not None:
        raise ValueError("give budget_epochs or budget_minutes, not both")
    settings = Settings(task_name, Path(out), stage_list(stages), budget_epochs, budget_minutes,
                        seed, data_dir, device)
    team = distributed.world()
    task = load_task(task_name, data_dir=data_dir)
    task.datasets()  # fail early, with the task's own message, if the data are missing
    progress = progress or _Silent()
    started = time.perf_counter()
    with Study(settings.out, resume=resume) as study:
        config = settings.journal_config(team.size)
        previous = study.meta("config")
        if previous is not None and previous != config:
            raise DisciplinedError(f"{settings.out} holds a study with other settings "
                                   f"({previous}); resume it with the same ones, or use "
                                   "another --out")
        study.set_meta("config", config)
        ctx = Context(settings, task, study, Hyper(batch_size=task.batch_size), None, progress,
                      executor)
        records: list[StageRecord] = []
        for index, name in enumerate(settings.stages, start=1):
            record = _run_stage(ctx, name, index)
            records.append(record)
            ctx = dataclasses.replace(ctx, hyper=ctx.hyper.apply(record.outcome.decision))
            if ctx.plan is None and record.outcome.seconds_per_step is not None:
                plan = _plan(ctx, record.outcome.seconds_per_step, started)
                ctx = dataclasses.replace(ctx, plan=plan, hyper=dataclasses.replace(
                    ctx.hyper, epochs=plan.final_epochs))
                progress.plan(plan)
        summary = _summary(ctx, records, time.perf_counter() - started)
        if team.is_main:
            (settings.out / "summary.json").write_text(json.dumps(summary, indent=1))
            write_train_script(settings.out, summary)
            with study.main_alone():
                write_report(settings.out, study)
        return StudyResult(settings.out, summary, study.reused)


def _run_stage(ctx: Context, name: StageName, index: int) -> StageRecord:
    """A stage's record: from the journal if it finished before, else run and journaled."""
    record = ctx.study.finished_stage(name)
    if record is None:
        ctx.progress.stage(name, index, len(ctx.settings.stages),
                           None if ctx.plan is None else ctx.plan.eta)
        start = time.perf_counter()
        outcome = STAGE_FUNCTIONS[name](ctx)
        record = StageRecord(name, index, outcome, time.perf_counter() - start)
        ctx.study.record_stage(record)
        record = distributed.from_main(record)  # under torchrun, rank 0's timings for all
    ctx.progress.decided(record)
    return record


def _plan(ctx: Context, seconds_per_step: float, started: float) -> Plan:
    """Fix the final length (epochs) and the short runs' length from the budget, once."""
    saved = ctx.study.meta("plan")
    if saved is not None:
        return Plan.from_dict(saved)
    s = ctx.settings
    train_data, _ = ctx.task.datasets()
    per_epoch = steps_per_epoch(train_data, ctx.hyper.batch_size)
    epoch_seconds = max(seconds_per_step * per_epoch, 1e-6)
    if s.budget_minutes is not None:
        spent = time.perf_counter() - started
        left = s.budget_minutes * 60 - spent * (2 if "confirm" in s.stages else 1)
        shorts = sum(n for st, n in SHORT_RUNS.items() if st in s.stages) * SHORT_FRACTION
        epochs = round(max(left / (epoch_seconds * (1 + shorts)), 1.0), 1)
    elif s.budget_epochs is not None:
        epochs = s.budget_epochs
    else:
        epochs = ctx.task.epochs or FALLBACK_EPOCHS
    short_epochs = round(max(epochs * SHORT_FRACTION, MIN_SHORT_STEPS / per_epoch), 2)
    short_seconds = short_epochs * epoch_seconds
    split = {st: n * short_seconds for st, n in SHORT_RUNS.items() if st in s.stages}
    if "confirm" in s.stages:
        split["confirm"] = seconds_per_step * RANGE_TEST_STEPS
    split["final"] = epochs * epoch_seconds
    plan = Plan(epochs, short_epochs, short_seconds, {k: round(v, 1) for k, v in split.items()})
    plan = distributed.from_main(plan)  # rank 0's measured speed sizes every rank's runs
    ctx.study.set_meta("plan", plan.to_dict())
    return plan


def _summary(ctx: Context, records: list[StageRecord], wall: float) -> dict[str, Any]:
    """summary.json: the hyper-parameters, each stage's decision, the final numbers."""
    final = next((r for r in records if r.outcome.final is not None), None)
    run = final.outcome.final if final is not None else None
    world = distributed.world().size
    return {
        "task": ctx.settings.task,
        "seed": ctx.settings.seed,
        "hyperparameters": ctx.hyper.to_dict(),
        "stages": [{"name": r.name, "decision": r.outcome.decision.to_dict(),
                    "reason": r.outcome.reason, "trials": len(ctx.study.trials(r.name)),
                    "wall_seconds": r.seconds} for r in records],
        "final": {
            "val_loss": run.val_loss if run else None,
            "val_metric": run.val_metric if run else None,
            "epochs": run.epochs if run else None,
            "wall_seconds": final.seconds if final else None,
        },
        "wall_seconds_total": sum(r.seconds for r in records) if records else wall,
        "data_parallel": {"world_size": world, "batch_size_per_process": ctx.hyper.batch_size,
                          "total_batch_size": ctx.hyper.batch_size * world},
    }
