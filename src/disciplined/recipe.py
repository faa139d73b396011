"""The checklist end to end (Smith 2018, Section 5) as a table of stages: range test, batch
size, max LR, momentum, weight decay, a confirming range test, the final 1cycle training, and
the closed loop that refines it (docs/decisions.md says what each stage trusts).

Each stage is a small function from a `Context` (the settings, the task, the journal, the
hyper-parameters decided so far, the budget plan) to an `Outcome` (a decision, its reason and
its evidence). `tune` runs the table: resuming a journaled stage, journaling a new one,
telling the progress object and applying the decision are written once, around it. A new
stage is one function and one entry in `STAGE_FUNCTIONS`.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import math
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import torch

from . import display, distributed
from .compare import Comparison
from .decisions import Decision, Hyper
from .defaults import (
    BASE_MOMENTUM,
    FALLBACK_EPOCHS,
    NUM_STEPS,
    ONE_CYCLE_DIV,
    OPTIMIZER_NAMES,
    USUAL_MAX_LR,
    start_weight_decay,
)
from .diagnose import MIN_LEARNED, MIN_REL_CHANGE, UNSTEADY, Verdict, learned_fraction
from .engine import AMP_CHOICES, evaluate, num_samples
from .errors import DisciplinedError
from .executors import Executor
from .halving import (
    AllFailedError,
    Halving,
    Preference,
    RungPlan,
    plan_rungs,
    spread,
    successive_halving,
)
from .plot import plot_range_test
from .range_test import RangeTestResult, task_range_test
from .report import pictures, write_report, write_train_script
from .searches import MOMENTA, SearchResult, batch_size_search
from .study import (
    MODEL_FILE,
    FinalRun,
    JournalExecutor,
    Outcome,
    StageRecord,
    Study,
    output_folder,
)
from .tasks import Runner, Task, load_task, loader_batch
from .trials import (
    EVAL_SAMPLES,
    EVALS_PER_TRIAL,
    Budget,
    TrialResult,
    TrialSpec,
    build_trainer,
    epoch_steps,
    train,
    val_samples,
)

StageName = Literal["range_test", "batch_size", "lr", "momentum", "weight_decay", "confirm",
                    "final", "refine"]
STAGES: tuple[StageName, ...] = get_args(StageName)
DEFAULT_STAGES: tuple[StageName, ...] = ("range_test", "lr", "momentum", "weight_decay",
                                         "final", "refine")
# A short run trains at least this many steps: fewer leave a 1cycle no room to rise and
# anneal, and the runs end before their losses part (measured on digits: 12-step runs all
# ended near the initial loss and tied).
MIN_SHORT_STEPS = 60
# Without --budget-minutes, tune spends about this many final trainings in all (tuning and
# the final training together); with it, the minutes.
TUNE_FINALS = 4.0
# ... but at least this many of the shortest runs a 1cycle allows (MIN_SHORT_STEPS): a
# final training of a few dozen steps leaves no room for a comparison otherwise.
MIN_SHORT_RUNS = 12
# How the tuning budget is shared among the search stages (the LR matters most: Smith 2018,
# Section 4.1; and it is where the range test alone is least trustworthy).
STAGE_WEIGHTS = {"batch_size": 1.0, "lr": 3.0, "momentum": 1.0, "weight_decay": 2.0}
# The shortest runs, as a fraction of the final length, at which reading a stage's short
# runs came as close to the full length's best as keeping the value the stage starts from,
# on the zoo's dev half (make stage-bias: momentum 0 points of regret at 1/4 against 0.08
# kept, 0.43 at 1/8; weight decay 0.95 at 1/2 against 1.37 kept, 1.55 at 1/8 and 1/4). A
# stage that cannot afford them keeps its value, and the stages before it get its share.
READABLE_FROM = {"momentum": 0.25, "weight_decay": 0.5}
# The LR candidates: half a decade apart, from half a decade above the range test's anchor
# (where its loss is lowest, or where a flat curve starts to rise) to 3.5 decades below it.
LR_STEPS = range(1, -8, -1)
# When the budget runs fewer LR candidates than LR_STEPS, the window keeps this many
# candidates above the range test's reading, the rest below it: on the zoo's dev half the
# grid's best lay at most 0.28 decades above that reading (friedman1_mlp) and up to 1.34
# below it (multilabel_mlp; transformer_parity 1.14), so a window centred on the reading
# left out two of eight tasks' best (make lr-prior's first table).
LR_WINDOW_ABOVE = 1
# Short runs favour a higher max LR than the full length rewards. Measured on the zoo's dev
# half only (make horizon-bias: every grid LR trained 1/8, 1/4 and 1/2 of the final length,
# weight decay 0), the median bias was first read as +0.75, +0.5 and +0.25 decades: a
# quarter of a decade per halving of the length. The LR stage corrects its choice by it
# when its longest runs were shorter than the final training. Read again with each task
# judged by what it is scored by, and LRs within the seeds' noise of the best counted as
# tied: the four tasks judged by their loss give +0.75, +0.5 and 0, the four classifiers
# (by accuracy) +0.25, 0 and 0. Yet the one classifier short runs misjudge
# (transformer_parity at 1/4: 76% against 99.8%) costs more than the correction does
# elsewhere; so the correction stays, for both kinds, and is checked at full length where
# the budget has room (`lr_to_check`).
HORIZON_BIAS_PER_HALVING = 0.25
# ... measured down to runs of 1/8 of the length, and not extrapolated below it: at 3x,
# tune's runs were often 6-9% of the final length, and a quarter of a decade per halving
# there lowered winners by 0.9-1 decade, more than any length measured supports.
HORIZON_SHORTEST = 1 / 8
# A classifier's accuracy is less biased than a loss (the dev half's regret at full length
# of the short-run winner lowered by 0, 0.5 or 1 decade, make horizon-bias's second table:
# by accuracy 6.07 / 0.42 / 2.76 points at 1/8, 5.91 / 0.49 / 3.38 at 1/4, while the loss
# tasks are best at 1 decade at 1/8): its correction stops at half a decade.
HORIZON_BIAS_MAX_ACCURACY = 0.5
# Weight decays tried (Smith 2018, Section 4.4 for SGD, up to 1e-2 for small data; AdamW's
# decoupled decay is multiplied by the LR, so its useful values are ~100x larger).
WEIGHT_DECAYS = {"sgd": (0.0, 1e-5, 1e-4, 1e-3, 1e-2), "adamw": (0.0, 1e-3, 1e-2, 1e-1, 1.0)}
# Under --budget-minutes the final training keeps the task's length unless it would take
# more than this share of the budget (then it is shortened to that share).
FINAL_SHARE = 0.5
# report.html's pictures take a fraction of a second each: on a budget of seconds (a task
# whose training takes one), all of them would take most of it. Where they would take more
# than this share of --budget-minutes, the report is written without them (tables and
# reasons in full) and the time goes to the decisions; `disciplined report` draws them.
PICTURES_SHARE = 0.1
# A stage may overrun its share by this factor before it stops growing its runs (the stages
# after it are re-planned from what is left).
ROOM_SLACK = 1.15
# The settings a study may change on --resume while it has no plan yet.
BUDGET_KEYS = frozenset({"budget_epochs", "budget_minutes"})
# When a sweep cannot tell, the next one is this many times longer (more steps at each LR).
LONGER_SWEEP = 4
# Training steps timed to plan the budget (after two untimed ones).
MEASURE_STEPS = 20
# The refine stage trains another full-length candidate only while this much of one final
# training's time is left.
REFINE_MIN = 0.9
# With every correction tried, refine trains the runs tied with its choice again with other
# seeds (`_settled_by_seeds`): at most this many, the choice and its nearest.
SETTLE_MOST = 3
# The sizes of refine's corrections, in decades, and how its reasons name them: half a
# decade (the stages' own step) first; where none of those is left to try and the budget
# still has room, the same directions a quarter and then an eighth of a decade away, each
# kept only if clearly better. A generous budget then looks nearer its choice instead of
# ending early; below an eighth, refine stops.
REFINE_STEPS = {0.5: "a half-decade", 0.25: "a quarter-decade", 0.125: "an eighth-of-a-decade"}
# The most pictures report.html draws for a stage (`report.pictures`): one, the final's two.
MOST_PICTURES = {"final": 2}
# Two max LRs closer than this (in decades) are one: 3 significant figures round by at most
# 0.002 decades, the half-decade steps are 0.5 apart.
SAME_LR_DECADES = 0.02
# What the closed loop calls a final run whose diagnosis found it no better than a constant
# prediction: the LR is the suspect, in either direction (`_corrections`).
NO_BETTER = "no better than a constant"
# How the reasons say that no run learned anything (`learned`).
NOTHING_LEARNED = (f"at every LR that trained steadily, the validation loss stayed at what a "
                   f"constant prediction scores or, where that is unknown, fell less than "
                   f"{MIN_LEARNED:.0%} below its first evaluation")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The final training's length and the wall budget, fixed once after the first range test
    (a resumed study reads it back, so its trials are the same trials). Each stage's share
    is re-planned when it starts, from what the stages before it really cost."""

    final_epochs: float
    final_steps: int
    # the budget: wall seconds under --budget-minutes, else final trainings ("units")
    budget_seconds: float | None
    budget_units: float | None
    eval_samples: int
    # measured on the engine itself: a training step, one validation sample, a trial's set-up
    step_seconds: float
    sample_seconds: float
    setup_seconds: float
    # the seconds loading the task and the first range test took
    spent_before: float
    # the seconds report.html's pictures will take (one drawn and timed when planning)
    report_seconds: float = 0.0
    # whether tune draws them (not where they would cost over PICTURES_SHARE of the budget)
    pictures: bool = True

    @property
    def shortest(self) -> float:
        """The shortest run a stage may train, as a fraction of the final length."""
        return min(1.0, MIN_SHORT_STEPS / max(1, self.final_steps))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        try:
            return cls(**data)
        except TypeError:
            raise DisciplinedError("this study was planned by an older version of disciplined; "
                                   "start it again in another --out") from None


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
    amp: str = "auto"
    compile: bool = False  # the final training's forward only: short runs stay eager

    def journal_config(self, world_size: int, start_weight_decay: float) -> dict[str, Any]:
        """The settings a resumed study must share (the output folder, the device and the
        final training's compilation may change)."""
        config: dict[str, Any] = {"task": self.task, "budget_epochs": self.budget_epochs,
                                  "budget_minutes": self.budget_minutes,
                                  "stages": list(self.stages), "seed": self.seed}
        if world_size > 1:  # a study keeps the total batch it was tuned for
            config["world_size"] = world_size
        if self.amp != "auto":  # studies from before the option keep their config
            config["amp"] = self.amp
        # a journal without the key was begun by a version that started SGD at 5e-4, and
        # one with another value by a version that started elsewhere: both are refused
        config["start_weight_decay"] = start_weight_decay
        return config


class Ledger:
    """The budget as it is spent, counted from the journal only (the seconds before the plan,
    each finished stage's seconds and trainings, each trial's as recorded), never from a
    live clock: a study resumed after a kill re-reads the same numbers and takes the same
    decisions. Trainings are counted in final trainings ("units": a trial's steps over the
    final's). It also keeps the running ratio of measured to predicted trial seconds, which
    corrects the speed estimate as trials finish."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds until the plan: the plan's own record of it
        self.seconds = 0.0
        self.units = 0.0
        self.current_seconds = 0.0
        self.current_units = 0.0
        self.correction = 1.0
        self._ratios: list[float] = []
        self.pictures: dict[str, int] = {}  # what report.html draws for each finished stage

    def spent(self) -> float:
        """Seconds spent so far."""
        return self.before + self.seconds + self.current_seconds

    def spent_units(self) -> float:
        """Final trainings' worth of training done since the plan."""
        return self.units + self.current_units

    def trial(self, seconds: float, units: float, predicted: float) -> None:
        self.current_seconds += seconds
        self.current_units += units
        self.observed(seconds, predicted)

    @property
    def measured(self) -> bool:
        """Whether any trial's real cost has corrected the plan's timed speed."""
        return bool(self._ratios)

    def observed(self, seconds: float, predicted: float) -> None:
        """One trial's measured against predicted seconds (also a finished stage's trials
        read back on resume, so the correction is the one the first run had)."""
        if predicted > 0 and seconds > 0:
            self._ratios.append(seconds / predicted)
            self.correction = float(statistics.median(self._ratios))

    def drew(self, stage: str, pictures: int) -> None:
        """A finished stage's pictures in report.html (`report.pictures`)."""
        self.pictures[stage] = pictures

    def stage_done(self, seconds: float, units: float) -> None:
        self.seconds += seconds
        self.units += units
        self.current_seconds = self.current_units = 0.0


@dataclasses.dataclass(frozen=True)
class Context:
    """What a stage sees: the settings, the loaded task, the journal, the hyper-parameters
    decided so far, the plan (None until the first range test has run), the range test's
    anchor (the highest LR worth training at), the ledger and the stages still to run."""

    settings: Settings
    task: Task
    study: Study
    hyper: Hyper
    plan: Plan | None
    progress: Progress
    executor: Executor | None
    ledger: Ledger
    anchor: float | None = None
    later: tuple[StageName, ...] = ()

    def trials(self, stage: str) -> JournalExecutor:
        """Runs a stage's trials through the executor, journaled one by one."""
        return JournalExecutor(self.study, stage, runner=self.executor,
                               device=self.settings.device, live=self.progress.live,
                               on_result=lambda r: self._seen(stage, r),
                               tasks={self.settings.task: self.task})

    def _seen(self, stage: str, result: TrialResult) -> None:
        # every rank counts rank 0's seconds, so all take the same budget decisions
        seconds = distributed.from_main(result.seconds)
        if self.plan is not None:
            fraction = result.steps / max(1, self.plan.final_steps)
            predicted = self.predicted(fraction, result.spec.eval_samples) \
                if result.state == "complete" else 0.0
            self.ledger.trial(seconds, fraction, predicted)
        self.progress.trial(stage, result)

    def planned(self) -> Plan:
        if self.plan is None:
            raise RuntimeError("the budget is planned after the first range test")
        return self.plan

    def max_lr(self) -> float:
        if self.hyper.max_lr is None:
            raise RuntimeError("max_lr is decided by the first range test")
        return self.hyper.max_lr

    def predicted(self, fraction: float, eval_samples: int | None) -> float:
        """Uncorrected seconds of a trial at `fraction` of the final length: its set-up, its
        training steps and its evaluations, at the speeds measured when planning."""
        plan = self.planned()
        steps = max(2, math.ceil(fraction * plan.final_steps))
        samples = plan.eval_samples if eval_samples is None else \
            min(eval_samples, plan.eval_samples)
        evals = min(steps, EVALS_PER_TRIAL) + 1
        return (plan.setup_seconds + steps * plan.step_seconds
                + evals * samples * plan.sample_seconds)

    def cost(self, fraction: float, full_validation: bool = False) -> float:
        """Expected wall seconds of a trial at `fraction` of the final length, corrected by
        what the trials so far really cost."""
        return self.ledger.correction * self.predicted(
            fraction, None if full_validation else EVAL_SAMPLES)

    def final_cost(self) -> float:
        return self.cost(1.0, full_validation=True)

    def run_overhead(self) -> float:
        """What a short run costs besides its steps (set-up, evaluations), in final
        trainings; nothing when the budget counts trainings rather than seconds."""
        plan = self.planned()
        if plan.budget_seconds is None:
            return 0.0
        samples = min(EVAL_SAMPLES, plan.eval_samples)
        seconds = plan.setup_seconds + (EVALS_PER_TRIAL + 1) * samples * plan.sample_seconds
        return self.ledger.correction * seconds / self.final_cost()

    def left(self) -> float:
        """The budget not yet spent, in final trainings: from the seconds left under
        --budget-minutes, else from the trainings left (which no clock changes)."""
        plan = self.planned()
        if plan.budget_seconds is not None:  # the report's pictures are kept in reserve
            left = plan.budget_seconds - self.report_reserve() - self.ledger.spent()
            return left / self.final_cost()
        return (plan.budget_units or 0.0) - self.ledger.spent_units()

    def report_reserve(self) -> float:
        """Seconds report.html's pictures will take: those the finished stages draw, and
        the most each stage still to run may draw. A finished stage that draws nothing (it
        had no room for runs, or they all failed) gives its part back: on a 2 s budget the
        part of every stage was 70% of it."""
        if not self.planned().pictures:
            return 0.0
        stages = self.settings.stages
        units = sum(_picture_units(st, min(self.ledger.pictures.get(st, _most_pictures(st)),
                                           _most_pictures(st)))
                    for st in stages)
        return self.planned().report_seconds * units / most_picture_units(stages)

    def spent(self) -> float:
        """What this budget has spent so far, in its own measure (seconds or trainings)."""
        if self.planned().budget_seconds is not None:
            return self.ledger.spent() / self.final_cost()
        return self.ledger.spent_units()

    def reserve(self) -> float:
        """Final trainings the search stages leave alone: the final training's, and one
        full-length run of the LR stage's uncorrected winner when the LR stage kept it for
        the refine stage to check (`lr_to_check`)."""
        keep = 1.0 if "final" in self.later else 0.0
        if "final" in self.later and "refine" in self.later and \
                lr_to_check(self.study) is not None:
            keep += 1.0
        return keep

    def share(self, stage: StageName) -> float:
        """This search stage's share, in final trainings, of the budget left after the
        reserve (`shares`): a later momentum or weight-decay stage whose part could not buy
        runs long enough to be read (READABLE_FROM) will keep its value, and leaves it."""
        return self.parts(stage)[stage]

    def parts(self, stage: StageName) -> dict[StageName, float]:
        """Every part `share` hands out when `stage` asks: its own and those the search
        stages after it would get now."""
        def readable(st: StageName, part: float) -> bool:
            return st not in READABLE_FROM or self.affordable(
                self.candidates(st), part, READABLE_FROM[st]) is not None
        searches = [st for st in (stage, *self.later) if st in STAGE_WEIGHTS]
        return shares(searches, max(0.0, self.left() - self.reserve()), readable)

    def candidates(self, stage: StageName) -> int:
        """How many values a momentum or weight-decay stage would run."""
        return len(MOMENTA) if stage == "momentum" else len(WEIGHT_DECAYS[self.task.optimizer])

    def affordable(self, n: int, share: float, readable: float) -> tuple[int, RungPlan] | None:
        """The most of `n` candidates (at least two) whose growing short runs fit `share`
        final trainings with a last rung of at least `readable` of the final length, and
        their plan; None when no number of them does."""
        plan, overhead = self.planned(), self.run_overhead()
        for fit in range(n, 1, -1):  # fewer candidates, longer runs
            rungs = plan_rungs(fit, share, plan.shortest, overhead=overhead)
            if rungs is not None and float(rungs.fractions[-1]) >= min(readable, 1.0) - 1e-9:
                return fit, rungs
        return None

    def weights_file(self, stage: str, label: str) -> str:
        """Where a full-length candidate's weights go, so it can become the final model
        (`trials.train` makes the folder when it writes them)."""
        folder = self.settings.out.resolve() / "weights"
        safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in label)
        return str(folder / f"{stage}-{safe}.pt")


def shares(stages: Sequence[StageName], pool: float,
           readable: Callable[[StageName, float], bool]) -> dict[StageName, float]:
    """`pool` final trainings shared by STAGE_WEIGHTS among `stages` (the first is the one
    asking; it always gets a part). A later stage whose part `readable` rejects gets none,
    and the others share its part; a stage once left out stays out, so this ends."""
    kept = list(stages)
    while True:
        total = sum(STAGE_WEIGHTS[st] for st in kept)
        parts = {st: pool * STAGE_WEIGHTS[st] / total for st in kept}
        fits = [st for st in kept if st == kept[0] or readable(st, parts[st])]
        if fits == kept:
            return {st: parts.get(st, 0.0) for st in stages}
        kept = fits


# --- the stages --------------------------------------------------------------------------------


def _range_test(ctx: Context) -> Outcome:
    """The LR range test at the hyper-parameters decided so far: what it shows (conclusive or
    not, and why), Smith's rule as the provisional max LR, and the anchor the LR stage's
    candidates hang from."""
    h, s = ctx.hyper, ctx.settings

    def sweep(steps: int) -> RangeTestResult:
        return task_range_test(ctx.task, weight_decay=h.weight_decay, momentum=h.momentum,
                               batch_size=h.batch_size, seed=s.seed, device=s.device,
                               num_steps=steps)

    rt = sweep(NUM_STEPS)
    reading = rt.reading
    if not math.isfinite(reading.anchor) or reading.anchor <= rt.start_lr:
        raise DisciplinedError(f"the range test on {s.task} could not train at all: "
                               f"{reading.why}")
    escalated = ""
    if not reading.conclusive:  # the first escalation: a longer sweep, more steps per LR
        longer = sweep(NUM_STEPS * LONGER_SWEEP)
        escalated = (f"a {NUM_STEPS}-step sweep could not tell ({reading.why}); "
                     f"a {NUM_STEPS * LONGER_SWEEP}-step one ")
        rt, reading = longer, longer.reading
        escalated += "could: " if reading.conclusive else "could not either: "
    provisional = provisional_max_lr(rt)
    if reading.conclusive:
        reason = (f"{escalated}{reading.why}; Smith's rule (the loss still falls clearly) reads "
                  f"max LR {provisional:.3g}")
    else:
        reason = (f"{escalated}cannot tell: {reading.why}. Max LR {provisional:.3g}, a decade "
                  f"below {reading.anchor:.3g}")
    if "lr" in ctx.later:
        reason += "; short runs at candidate LRs decide it next"
    units = 0.0 if ctx.plan is None else len(rt.runs[0].lr) / ctx.plan.final_steps
    return Outcome(Decision(max_lr=provisional), reason, range_test=rt,
                   units=units)


def provisional_max_lr(rt: RangeTestResult) -> float:
    """What a range test reads as the max LR before short runs have spoken: Smith's rule
    (the loss still falls clearly) when the curve is conclusive, else a decade below the
    anchor (where the loss is lowest, or where a flat curve starts to rise)."""
    if rt.max_lr is not None and rt.reading.conclusive:
        return rt.max_lr
    return rt.reading.anchor / 10


def _batch_size(ctx: Context) -> Outcome:
    """Half, the same and twice the task's batch, at equal wall time."""
    s, base = ctx.settings, ctx.hyper.batch_size
    seconds = max(ctx.share("batch_size") / 3 * ctx.final_cost(),
                  ctx.cost(ctx.planned().shortest))
    result = batch_size_search(s.task, sizes=[base // 2, base, base * 2], seconds=seconds,
                               seed=s.seed, data_dir=s.data_dir,
                               executor=ctx.trials("batch_size"))
    return Outcome(result.decision, result.reason, search=result)


def _halving_stage(ctx: Context, stage: StageName, values: Sequence[Any],
                   field: str, describe: Callable[[Any], str],
                   prefer: Preference, why_prefer: str,
                   likely: Any, untold: tuple[Preference, str] | None = None,
                   grows: bool = False, plateau: tuple[Any, str] | None = None,
                   window: tuple[Callable[[Sequence[Any], int], list[Any]], str] | None = None
                   ) -> Outcome:
    """A search stage as growing short runs over `values` of one TrialSpec `field`, from
    this stage's share of the budget; the winner's full-length run, if there is one, has
    its weights kept. When the budget cannot run them all, the values nearest `likely`
    (the prior: the paper's default, the range test's reading) are run, or those `window`
    picks (a function of the values and how many, and the phrase that says which). Ties
    are settled by `prefer` (and `why_prefer` says why), or by `untold` (a rule and its
    why) when no run length told any candidates apart. A stage that `grows` (the LR, which
    comes first) runs a wide tie it could not break at its own share again, longer, in the
    time of the search stages after it (`_grown`); and when a rung of its runs has learned
    nothing at any LR (`learned_nothing`), it stops growing them and trains candidates the
    full length instead (`_to_full_length`). On such a plateau `plateau` (a value and the
    phrase that says why) takes `likely`'s place, and settles the ties `untold` would have
    (`_plateau_settled`): the prior `likely` came from is no evidence there."""
    h, s, plan = ctx.hyper, ctx.settings, ctx.planned()
    parts = ctx.parts(stage)
    share = parts[stage]
    current = getattr(h, field)
    readable = READABLE_FROM.get(stage, 0.0)
    affordable = ctx.affordable(len(values), share, readable)
    if affordable is None:
        held = " (after keeping a full-length run of the LR stage's short-run winner for " \
            "the refine stage to check)" if ctx.reserve() > 1 else ""
        lr = ctx.study.finished_stage("lr")
        took = " (the LR stage's runs grew into this stage's time: the LR comes first)" \
            if lr is not None and lr.outcome.search is not None and \
            stage in lr.outcome.search.evidence.get("grown", ()) else ""
        longest = ctx.affordable(2, share, 0.0)  # two candidates run the longest
        if longest is None:
            room = "less than two short runs"
        else:
            most = float(longest[1].fractions[-1])
            room = (f"room for runs of {most:.0%} of the final length at most; on the "
                    f"zoo's dev half, runs shorter than {readable:.0%} of it "
                    f"read {stage.replace('_', ' ')} no better than keeping the value the "
                    "stage starts from (make stage-bias)")
        reason = (f"kept {describe(current)}: the budget left {share:.2g} final trainings' "
                  f"time for this stage{held}, {room}{took}")
        return Outcome(Decision(), reason)
    fit, rungs = affordable
    pick, which = window or ((lambda vs, k: nearest(vs, likely, k)),
                             f"those nearest {describe(likely)}")
    keys = list(values) if fit == len(values) else pick(list(values), fit)
    notes: list[str] = []
    if len(keys) < len(values):
        longer = f" at runs of {readable:.0%} of the final length or longer (shorter ones " \
            "misread this stage on the zoo's dev half)" if readable else ""
        notes.append(f"the budget allowed {len(keys)} of the {len(values)} candidates"
                     f"{longer}: {which}")

    per_epoch = epoch_steps(ctx.task, h.batch_size)

    def spec_for(value: Any, fraction: float) -> TrialSpec:
        # a run as many steps long as the final training is the full length: run as one, on
        # the whole validation set with its weights kept, the final can take it as it is
        # (at 99.95% of the length, a fraction the budget rounded down, it was repeated)
        steps = math.ceil(plan.final_epochs * fraction * per_epoch)
        full = fraction >= 1 or steps >= math.ceil(plan.final_epochs * per_epoch)
        fraction = 1.0 if full else fraction
        label = f"{describe(value)} @ {_fraction(fraction)}"
        base = TrialSpec(s.task, max_lr=h.max_lr or 0.0, budget=Budget(
            epochs=plan.final_epochs * fraction), momentum=h.momentum,
            weight_decay=h.weight_decay, batch_size=h.batch_size, seed=s.seed,
            data_dir=s.data_dir, label=label, eval_samples=None if full else EVAL_SAMPLES,
            keep="best" if full else "last", amp=s.amp,
            save_model=ctx.weights_file(stage, label) if full else None)
        return base.with_(**{field: value})

    # what the stage spends is counted in seconds (or trainings) and read in final trainings
    # at the speed known now: ctx.spent() read at two speeds would mix them
    began_seconds, began_units = ctx.ledger.spent(), ctx.ledger.spent_units()
    correction = ctx.ledger.correction

    def scale() -> float:
        """How much dearer runs are now known to be than at the stage's start."""
        return 1.0 if plan.budget_seconds is None else ctx.ledger.correction / correction

    def used() -> float:
        """What the stage has spent so far, in final trainings at the speed known now."""
        if plan.budget_seconds is None:
            return ctx.ledger.spent_units() - began_units
        return (ctx.ledger.spent() - began_seconds) / ctx.final_cost()

    replanned: list[str] = []  # what the first run's cost changed, said in the reason
    replanned_keys: list[Any] = []
    pilot = nearest(keys, likely, 1)[0]

    def replan(current: RungPlan) -> tuple[list[Any], RungPlan]:
        """The candidates and the plan once the stage's first run has shown what runs
        really cost: kept while, at that cost, the plan fits the stage's share of seconds
        with the slack any stage has, else as many of the candidates nearest `likely` as
        that share affords (`affordable`; less that run's time where the plan's first
        length changes and it is left out), or that run alone. The share
        stays the seconds it was: the final training's dearer reserve is the final's to
        fit (`_final_epochs`); re-shared, a cost 6% above the plan's cut a share of 0.7
        final trainings by 14%, and nine candidates to two (transformer_sorted, 3x)."""
        dearer = scale()
        if current.cost * dearer <= ROOM_SLACK * share:
            return keys, current
        took = f"the first run took {dearer:.2f}x the time the plan had timed"
        # a plan whose first rung keeps that run's length counts it as one of its runs
        fits = ctx.affordable(len(keys), share / dearer, readable)
        if fits is None or fits[1].fractions[0] != current.fractions[0]:
            fits = ctx.affordable(len(keys), share / dearer - used(), readable)
        if fits is None:
            replanned.append(f"{took}, and the stage's share left no room for another")
            replanned_keys[:] = [pilot]
            return [pilot], RungPlan(current.fractions[:1], (1,), current.overhead)
        fit, fitted = fits
        kept = keys if fit == len(keys) else pick(keys, fit)
        fewer = "" if fit == len(keys) else f" for {fit} of the candidates ({which})"
        out = "" if fitted.fractions[0] == current.fractions[0] else \
            ", and that run was left out of the comparison"
        replanned.append(f"{took}, so the runs were re-planned{fewer}: up to "
                         f"{_length(float(fitted.fractions[-1]))} (the plan had "
                         f"{_length(float(current.fractions[-1]))}){out}")
        replanned_keys[:] = kept
        return kept, fitted

    # before any run has measured the speed, the plan rests on 20 timed steps: the first
    # run checks it before the rest are committed to (only a budget in seconds depends on it)
    measured = plan.budget_seconds is None or ctx.ledger.measured
    try:
        found = successive_halving(
            keys, spec_for, rungs, prefer=prefer, executor=ctx.trials(stage),
            prefer_untold=None if untold is None else untold[0],
            room=lambda: min(ROOM_SLACK * share / scale() - used(),
                             ctx.left() - ctx.reserve()),
            pilot=pilot, replan=None if measured else replan,
            stop=(lambda rung: learned_nothing(rung) and full_length_fit(ctx) >= 2)
            if grows else None)
        keys = replanned_keys or keys
        if len(keys) == 1:  # the pilot alone: nothing was compared
            return Outcome(Decision(), f"kept {describe(current)}: {replanned[0]}")
        on_plateau = grows and found.last.fraction < 1 and \
            learned_nothing(found.last.comparison)
        if on_plateau and plateau is not None:
            centre = likely = plateau[0]
            untold = (lambda tied, _verdicts: nearest(tied, centre, 1)[0],
                      f"the one nearest {describe(centre)}, {plateau[1]}")
        if on_plateau:
            found = _to_full_length(ctx, stage, found, keys, spec_for, prefer,
                                    None if untold is None else untold[0], likely, parts,
                                    "" if plateau is None else f", {plateau[1]},")
        if on_plateau and untold is not None:
            found = _plateau_settled(found, untold[0])
        if grows and found.tied:
            found = _grown(ctx, stage, found, spec_for, prefer,
                           None if untold is None else untold[0], likely, parts)
        found = _extended(ctx, stage, keys, found, spec_for, prefer,
                          None if untold is None else untold[0], likely, parts)
    except AllFailedError as err:
        return Outcome(Decision(), f"kept {describe(current)}: {err}")
    winner = found.winner
    last = found.last.comparison
    if _nothing_trained(last):
        said = ", ".join(f"{r.label}: {r.diagnosis.verdict if r.diagnosis else r.error}"
                         for r in last.results)
        return Outcome(Decision(), f"kept {describe(current)}: every candidate diverged or "
                                   f"failed at the longest runs ({said}); check the task, or "
                                   "give the value yourself")
    verdicts = [r.diagnosis.verdict for r in last.results if r.diagnosis is not None]
    # a tie's pick is not the validation loss's: the reason says so from its first words
    how = "read from the runs of" if found.tied else "chosen by validation loss among"
    reason = (f"{describe(winner)}, {how} "
              f"{', '.join(describe(k) for k in keys)}; "
              + "".join(f"{r}; " for r in replanned) + found.length_note)
    if found.tied:
        why = why_prefer if found.told_apart or untold is None else untold[1]
        tied = ", ".join(describe(k) for k in found.leaders)
        reason += f"; of the tied ones ({tied}), {why}"
    if verdicts and all(v == "underfitting" for v in verdicts):
        notes.append("every run of the longest rung was still underfitting")
    decision = Decision(**{field: winner})
    search = SearchResult(stage, decision, reason, [r.comparison for r in found.rungs],
                          {"values": list(keys), "fractions": [r.fraction for r in found.rungs],
                           "tied": found.tied, "told_apart": found.told_apart,
                           "grown": list(found.grown),
                           "share_finals": share,
                           "planned_finals": rungs.cost}, tuple(notes))
    return Outcome(decision, reason, search=search)


def _nothing_trained(rung: Comparison) -> bool:
    """Whether every run of a rung diverged or failed: a rung with nothing to rank by."""
    return all(r.diagnosis is None or r.diagnosis.verdict == "diverged" for r in rung.results)


def learned(result: TrialResult) -> bool | None:
    """Whether a run learned anything from its inputs: its validation loss got clearly below
    what the best constant prediction scores (the diagnosis's `beats_constant`; for a curve
    too short for the diagnosis to read the noise, or a diagnosis journaled before it read
    the constant, 1% below), or, where that is unknown, fell diagnose's MIN_LEARNED below
    its first evaluation; None for a run that failed or diverged, or has no curve: it says
    nothing either way."""
    curve = [] if result.history is None else result.history.val_loss
    if result.state != "complete" or not curve or not all(map(math.isfinite, curve)) or (
            result.diagnosis is not None and result.diagnosis.verdict == "diverged"):
        return None
    beats = None if result.diagnosis is None else result.diagnosis.evidence.get(
        "beats_constant")
    constant = result.history.baseline if result.history is not None else None
    if beats is None and constant is not None:  # a curve too short to read, or read before
        beats = min(curve) < constant - MIN_REL_CHANGE * abs(constant)
    return bool(beats) if beats is not None else learned_fraction(curve) >= MIN_LEARNED


def learned_nothing(rung: Comparison) -> bool:
    """Whether no run of a rung has learned yet (`learned`) at any LR that trained steadily
    (and at least one did train). On such a plateau the runs' order is noise at any length
    short of the final one (FINDINGS: a transformer's runs of 2-8 of its 12 epochs all sat
    at the loss of predicting the class frequencies, 1.09-1.10 for three classes, at every
    LR, and only full-length runs told them apart)."""
    said = [f for f in (learned(r) for r in rung.results) if f is not None]
    return bool(said) and not any(said)


def _plateau_settled(found: Halving, untold: Preference) -> Halving:
    """A tie at a length where no run had learned anything yet (`learned_nothing`), that
    the full length could not settle (`_to_full_length` needs room for two full-length
    runs), settled by `untold` (for the LR, the one nearest its usual value: `_lr`), as a
    tie no length told apart; any longer runs after it start from there. Where the runs
    told some LRs apart, they told apart only LRs too low to reach the plateau's floor: the
    rule for ties among runs that learned, the lowest LR, rests on short runs favouring high
    LRs by their faster progress, and no run made any. FINDINGS: on a plateau transformer
    every LR's short run sat on the plateau, and the lowest of them cannot leave it in the
    final training either. Unchanged where a run learned, or where nothing is tied."""
    if not found.tied or found.last.fraction >= 1 \
            or not learned_nothing(found.last.comparison):
        return found
    # an untold tie's note already says that no length told any apart
    told = (": the runs told apart only LRs too low to reach the plateau, and said nothing "
            "of the order of the rest") if found.told_apart else ""
    note = f"{found.length_note}; no run had learned anything yet ({NOTHING_LEARNED}){told}"
    return dataclasses.replace(found, winner=untold(list(found.leaders), {}),
                               told_apart=False, length_note=note)


def full_length_fit(ctx: Context) -> int:
    """How many full-length runs the budget left buys where one of them is to be the final
    training (it is kept, not repeated: `_reusable`), the search stages after this one
    given up for them."""
    room = ctx.left() - ctx.reserve() + (1.0 if "final" in ctx.later else 0.0)
    return max(0, math.floor(room + 1e-9))


def _to_full_length(ctx: Context, stage: StageName, found: Halving, keys: Sequence[Any],
                    spec_for: Callable[[Any, float], TrialSpec], prefer: Preference,
                    untold: Preference | None, likely: Any,
                    parts: Mapping[StageName, float], why_likely: str = "") -> Halving:
    """A rung whose runs learned nothing (`learned_nothing`): instead of growing them by
    doublings that a plateau would still tie, as many candidates as the budget left buys
    (`full_length_fit`) train the full length, those nearest `likely` (for the LR, its
    usual value; `why_likely` says why) of the ones that trained steadily. The best at full
    length wins, and the final training keeps its run. Unchanged when fewer than two fit."""
    steady = {r.spec.label for r in found.last.comparison.results if learned(r) is not None}
    pool = [k for k in keys if spec_for(k, found.last.fraction).label in steady]
    fit = min(full_length_fit(ctx), len(pool))
    if fit < 2:
        return found
    chosen = nearest(pool, likely, fit)
    taken = [st for st in ctx.later if parts.get(st, 0.0) > 0]
    whose = [f"the {' and '.join(st.replace('_', '-') for st in taken)} "
             f"stage{'s' if len(taken) > 1 else ''}"] if taken else []
    if "final" in ctx.later:
        whose.append("the final training (which keeps the best of them)")
    shown = ", ".join(f"{k:.3g}" for k in chosen)
    note = (f"no run of {_length(found.last.fraction)} had learned anything yet "
            f"({NOTHING_LEARNED}): short runs cannot tell LRs "
            f"apart on such a plateau, so the {fit} candidates nearest {likely:.3g}"
            f"{why_likely} of those ({shown}) trained the full length instead"
            + (f", in the time of {' and of '.join(whose)}" if whose else ""))
    rungs = RungPlan((Fraction(1),), (fit,), 0.0)
    return _once_more(ctx, stage, found, chosen, spec_for, rungs, prefer, untold, note,
                      grown=tuple(taken))


def wider_than_a_cycle(tied: Sequence[float]) -> bool:
    """Whether tied max LRs span more than a 1cycle sweeps through on its own (its LR goes
    from max_lr / ONE_CYCLE_DIV to max_lr and back): within that span, the highest one's
    cycle passes through every other one's peak, and the choice among them matters less
    than the momentum and weight-decay stages that growing would cost. On the dev half at
    10x, growing ties of any width lost 0.8-1.3 points on every seed of tabular_mlp, whose
    ties were two neighbours half a decade apart and whose weight-decay stage then no
    longer ran."""
    return len(tied) > 1 and math.log10(max(tied) / min(tied)) > \
        math.log10(ONE_CYCLE_DIV) + SAME_LR_DECADES


def _grown(ctx: Context, stage: StageName, found: Halving,
           spec_for: Callable[[Any, float], TrialSpec], prefer: Preference,
           untold: Preference | None, likely: Any,
           parts: Mapping[StageName, float]) -> Halving:
    """A tie still unbroken at the longest runs this stage's share allowed, run again at
    least twice as long (at most the full length) in the time that the search stages after
    it, those with a part of the budget (`parts`), would have had. Smith sets the LR before
    momentum and weight decay; at an LR still in doubt, their runs would be read at the
    wrong LR. Only a tie wider than one 1cycle's own LR range grows (`wider_than_a_cycle`).
    As many of the tied as fit: a spread of them, so the longer runs still cover their
    range, or, when no length told any apart, those nearest `likely` (so the untold rule
    can still take the one it would have taken). Unchanged when not even two fit; when
    every longer run fails or diverges, the shorter runs' decision stands."""
    if not wider_than_a_cycle(found.leaders):
        return found
    taken = [st for st in ctx.later if parts.get(st, 0.0) > 0]
    longer = min(1.0, 2 * found.last.fraction)
    room = round(ctx.left() - ctx.reserve(), 6)  # a resumed study plans the same runs
    if not taken or room <= 0:
        return found
    overhead = ctx.run_overhead()
    for fit in range(len(found.leaders), 1, -1):
        rungs = plan_rungs(fit, room, longer, max_rungs=1, overhead=overhead)
        if rungs is not None:
            break
    else:
        return found
    leaders = list(found.leaders)
    keys = spread(leaders, fit) if found.told_apart else nearest(leaders, likely, fit)
    names = " and ".join(st.replace("_", "-") for st in taken)
    shown = ", ".join(f"{k:.3g}" for k in keys)
    grew = (f"still tied within noise at {_length(found.last.fraction)}, the longest the "
            f"LR stage's share allowed; {len(keys)} of the tied "
            f"({shown}) then ran at {_length(float(rungs.fractions[-1]))} in the time of "
            f"the {names} stage{'s' if len(taken) > 1 else ''} (the LR comes first)")
    return _once_more(ctx, stage, found, keys, spec_for, rungs, prefer, untold, grew,
                      grown=tuple(taken))


def _once_more(ctx: Context, stage: StageName, found: Halving, keys: Sequence[Any],
               spec_for: Callable[[Any, float], TrialSpec], rungs: RungPlan,
               prefer: Preference, untold: Preference | None, note: str,
               grown: tuple[str, ...] = ()) -> Halving:
    """`found` with one more rung of `keys` run at `rungs` (`_grown`, `_extended`), which
    decides unless every run of it fails or diverges: then the shorter runs do. `note`
    says what ran and why; how it ended is added."""
    try:
        more = successive_halving(keys, spec_for, rungs, prefer=prefer,
                                  executor=ctx.trials(stage),
                                  prefer_untold=None if found.told_apart else untold)
    except AllFailedError:
        more = None
    if more is None or _nothing_trained(more.last.comparison):
        return dataclasses.replace(found, length_note=(
            f"{note}, where every run diverged or failed: the shorter runs decide"),
            rungs=found.rungs if more is None else [*found.rungs, *more.rungs],
            grown=grown)
    told = found.told_apart or more.told_apart
    if more.tied:
        outcome = "still tied" + ("" if told else ", and no length told any apart")
    else:
        outcome = "which told them apart"
    return Halving(more.winner, [*found.rungs, *more.rungs], more.tied,
                   f"{note}, {outcome}", told, more.leaders, grown=grown)


def _extended(ctx: Context, stage: StageName, keys: Sequence[Any], found: Halving,
              spec_for: Callable[[Any, float], TrialSpec], prefer: Preference,
              untold: Preference | None, likely: Any,
              parts: Mapping[StageName, float]) -> Halving:
    """Runs that stopped short of the full length while time is left that nothing will use:
    the budget not spent, less the reserve and the parts the later search stages were
    planned (`parts`, at this stage's start). The stage's share is planned from speeds
    timed before any of its runs, and when those runs cost less than planned, or when a
    later stage's part was too small to read and came to this one, the time would go
    unused (on the zoo at 3x: up to 0.94 of a final training, and budgets used to 0.84x).
    The leaders (a spread of a tie, or those nearest `likely` when no length told any
    apart), or the winner and the runner-up, run once more, at least twice as long: longer
    runs tell more, and leave less short-horizon bias to correct. The better of them at
    the longer length wins; a tie there is settled by `prefer` (`untold` when still no
    length told any apart). For the LR stage, where later search stages have a part, the
    full-length check of its horizon correction that it may keep for refine counts as
    theirs too. Refine's own corrections hold no part: the time goes here first. Unchanged
    when not two such runs fit; when they all fail or diverge, the shorter runs decide."""
    if found.last.fraction >= 1 or found.grown:
        return found
    later = sum(part for st, part in parts.items() if st != stage and part > 0)
    if later > 0 and stage == "lr" and "final" in ctx.later and "refine" in ctx.later:
        later += 1.0  # the full-length check `_lr` keeps for refine would come out of them
    room = round(ctx.left() - ctx.reserve() - later, 6)  # a resumed study plans the same
    if room <= 0:
        return found
    last = found.last.comparison
    by_label = {spec_for(k, found.last.fraction).label: k for k in keys}
    ranked = [by_label[x.label] for x in last.ranking
              if x.rank is not None and x.label in by_label]
    tops = list(found.leaders) if found.tied else ranked[:2]
    longer = min(1.0, 2 * found.last.fraction)
    overhead = ctx.run_overhead()
    for fit in range(len(tops), 1, -1):
        rungs = plan_rungs(fit, room, longer, max_rungs=1, overhead=overhead)
        if rungs is not None:
            break
    else:
        return found
    if found.tied:
        chosen = spread(tops, fit) if found.told_apart else nearest(tops, likely, fit)
    else:
        chosen = tops
    chosen = [k for k in keys if k in chosen]  # in natural order
    which = "the tied ones" if found.tied else "the winner and the runner-up"
    planned = found.length_note.replace("the longest the budget allowed",
                                        "the longest the stage's plan allowed")
    ran = (f"{planned}; with {room:.2g} final trainings' time left that no "
           f"later stage would use, {len(chosen)} of {which} ran again at "
           f"{_length(float(rungs.fractions[-1]))}")
    return _once_more(ctx, stage, found, chosen, spec_for, rungs, prefer, untold, ran)


def nearest(values: Sequence[Any], likely: Any, k: int) -> list[Any]:
    """The `k` of `values` (in order) whose places are nearest the place of `likely` (or of
    the value closest to it), kept in order."""
    def place(v: Any) -> float:  # a weight decay of 0 lies below every positive one
        if isinstance(v, tuple):
            return float(v[0])
        return math.log10(v) if v > 0 else -math.inf

    centre = values.index(likely) if likely in values else \
        min(range(len(values)), key=lambda i: abs(place(values[i]) - place(likely)))
    chosen = sorted(range(len(values)), key=lambda i: (abs(i - centre), i))[:k]
    return [values[i] for i in sorted(chosen)]


def from_above(values: Sequence[float], likely: float, k: int) -> list[float]:
    """`k` of `values` (ascending LRs): the one next above the value nearest `likely`, and
    those below it; the lowest `k` where fewer lie below. See LR_WINDOW_ABOVE."""
    centre = min(range(len(values)), key=lambda i: abs(math.log10(values[i] / likely)))
    top = min(len(values), centre + 1 + LR_WINDOW_ABOVE)
    return list(values[max(0, top - k):max(top, k)])


def _length(f: float) -> str:
    return "the full length" if f >= 1 else f"{f:.0%} of the final length"


def _fraction(f: float) -> str:
    return "full" if f >= 1 else f"{f:.0%}"


def lr_candidates(anchor: float) -> list[float]:
    """Max LRs half a decade apart hanging from the range test's anchor, ascending."""
    return sorted(float(f"{anchor * 10 ** (k / 2):.3g}") for k in LR_STEPS)


def horizon_bias(fraction: float, by_accuracy: bool = False) -> float:
    """Decades by which runs of `fraction` of the final length overrate the max LR, for a
    task judged by its loss or (`by_accuracy`) by its accuracy: a quarter of a decade per
    halving of the length, as far as the dev half measured it (1/8), and never more than
    half a decade for a classifier."""
    halvings = math.log2(1 / max(fraction, HORIZON_SHORTEST))
    bias = HORIZON_BIAS_PER_HALVING * max(0.0, halvings)
    return min(bias, HORIZON_BIAS_MAX_ACCURACY) if by_accuracy else bias


def horizon_corrected(max_lr: float, fraction: float, by_accuracy: bool = False) -> float:
    """The max LR the full length would reward, from the one runs of `fraction` of it chose
    (3 significant figures)."""
    return float(f"{max_lr * 10 ** -horizon_bias(fraction, by_accuracy):.3g}")


def lr_to_check(study: Study) -> float | None:
    """The max LR the LR stage's short runs chose, where the horizon correction replaced it
    and the budget kept a full-length run of it for the refine stage. The correction is the
    dev half's median, and the bias varies between tasks by as much as the correction
    itself (make horizon-bias: 0 to 1 decade at 1/8 of the length); only a full-length
    run of that winner settles it for this task. Read from the journal, so a resumed study
    keeps the same reserve."""
    record = study.finished_stage("lr")
    search = None if record is None else record.outcome.search
    value = None if search is None else search.evidence.get("check")
    return None if value is None else float(value)


def same_lr(a: float | None, b: float | None) -> bool:
    """Equal up to the rounding to 3 significant figures that every LR here goes through
    (0.0316 x 10^0.5 is 0.0999, the 0.1 it came from)."""
    if a is None or b is None or a <= 0 or b <= 0:
        return a == b
    return abs(math.log10(a / b)) < SAME_LR_DECADES


def lowest_tied_lr(tied: Sequence[float], _verdicts: Mapping[float, Verdict | None]) -> float:
    """Of max LRs tied at runs shorter than the final length, the lowest: short runs favour
    high LRs, so it is the full length's best more often than the middle or the highest one
    (make lr-prior, dev half: 2.67 / 6.00 / 2.63 points of regret at runs of 1/8, 1/4, 1/2
    of the length, against 5.87 / 7.09 / 2.25 and 12.11 / 11.78 / 5.73). Passing over a
    tied run still underfitting at its end was tried (2.44 / 6.00 / 2.44 on those files)
    and withdrawn: in tune's own runs on the dev half, three seeds each, it acted twice and
    both times for the worse (transformer_parity at 10x: 0.00251 over 0.000792, 77% where
    the grid's LRs near the lower one reach 97-100%)."""
    return min(tied)


def _lr(ctx: Context) -> Outcome:
    """Max LR by growing short runs over candidates below the range test's anchor: the range
    test says where training stops working, the runs say which LR below it trains best."""
    if ctx.anchor is None:
        raise RuntimeError("the LR stage needs the first range test's anchor")
    provisional = ctx.max_lr()
    outcome = _halving_stage(
        ctx, "lr", lr_candidates(ctx.anchor), "max_lr", lambda v: f"max LR {v:.3g}",
        prefer=lowest_tied_lr, why_prefer="the lowest LR, as short runs favour high ones",
        likely=provisional, grows=True,
        window=(lambda values, k: from_above(values, provisional, k),
                f"the one above the range test's max LR {provisional:.3g} and those below "
                "it, where the zoo's dev half's best LRs lay (LR_WINDOW_ABOVE, make "
                "lr-prior)"),
        untold=(lambda tied, _verdicts: nearest(tied, provisional, 1)[0],
                f"the one nearest the range test's max LR {provisional:.3g}, as the runs "
                "said nothing of their order (on the zoo's dev half the grid's best lay 0.5 "
                "decades from that reading on average, 2.3 from the lowest candidate: make "
                "lr-prior)"),
        plateau=(USUAL_MAX_LR[ctx.task.optimizer],
                 f"where {OPTIMIZER_NAMES[ctx.task.optimizer]}'s max LR usually lies (on a "
                 "plateau the range test's reading is the noise of its sweep, not evidence: "
                 "FINDINGS' plateau transformer's sweeps were flat from 1e-5 to 0.3, its best "
                 "max LR 3e-3; defaults.USUAL_MAX_LR)"))
    search = outcome.search
    # a tie was already settled (toward the lower LR, the range test's reading, or on a
    # plateau the usual max LR); a clear winner of runs shorter than the final training is
    # corrected by the measured bias, never below the lowest LR tried
    if search is not None and search.evidence["fractions"][-1] < 1 \
            and not search.evidence["tied"]:
        length = search.evidence["fractions"][-1]
        chosen = outcome.decision.max_lr or 0.0
        by_accuracy = ctx.task.metric == "accuracy"
        corrected = max(horizon_corrected(chosen, length, by_accuracy),
                        min(search.evidence["values"]))
        if not same_lr(corrected, chosen):
            decision = Decision(max_lr=corrected)
            tried = "" if corrected in search.evidence["values"] else \
                " (between the candidates: not itself trained)"
            # the final training and a full-length run of the winner must both fit in what
            # is left (from the journal, so a resumed study decides the same)
            checked = "final" in ctx.later and "refine" in ctx.later and ctx.left() >= 2.0
            check = (f"; a full-length run of max LR {chosen:.3g} is kept in the budget to "
                     "check the correction (the refine stage)") if checked else \
                ("; not checked at full length: the budget has no room for the final "
                 "training and one more") if "refine" in ctx.later else ""
            reason = outcome.reason + (
                f"; runs of {length:.0%} of the final length favour a max LR about "
                f"{horizon_bias(length, by_accuracy):.2g} decades above what the full "
                f"length rewards ({'by accuracy; ' if by_accuracy else ''}the zoo's dev "
                "half, make horizon-bias): "
                f"corrected from {chosen:.3g} to {corrected:.3g}{tried}{check}")
            evidence = {**search.evidence, "uncorrected": chosen,
                        **({"check": chosen} if checked else {})}
            outcome = dataclasses.replace(outcome, decision=decision, reason=reason,
                                          search=dataclasses.replace(
                                              search, decision=decision, reason=reason,
                                              evidence=evidence))
    if outcome.search is not None:
        runs = outcome.search.merged().results
        if all(r.diagnosis is not None and r.diagnosis.verdict == "underfitting"
               for r in runs if r.state == "complete"):
            # on a plateau no short run can show more: only a long enough training leaves it
            blame = ("the runs sat on a plateau that short runs do not leave, so they cannot "
                     "say whether the LR or the model's capacity holds it back") \
                if any(map(learned_nothing, outcome.search.comparisons)) else \
                "the LR is not what holds this model back (its capacity or the data may be)"
            outcome = dataclasses.replace(outcome, reason=outcome.reason + (
                f"; every run underfits, up to where the range test's loss stops falling: "
                f"{blame}"))
    return outcome


# Candidates still tied after runs shorter than the final length: the value the stage started
# from, or the tied one nearest it. On the zoo's dev half (make stage-bias) this was as good
# a reading of momentum as the rule before it (0.95 if tied, else the lowest) and, for weight
# decay, better than the largest tied value (Smith's "short runs undervalue regularization")
# at runs of 1/8-1/2 of the length, and than the smallest; one task each way decides that.


def _tied_to_start(describe: Callable[[Any], str], start: Any) -> tuple[Preference, str]:
    """`prefer` and its sentence for a stage whose ties keep `start` or the value nearest it."""
    return (lambda tied, _verdicts: nearest(tied, start, 1)[0],
            f"the one nearest {describe(start)}, where the stage started")


def _momentum(ctx: Context) -> Outcome:
    def describe(v: Any) -> str:
        return f"momentum {v[0]:g}->{v[1]:g}"
    prefer, why = _tied_to_start(describe, ctx.hyper.momentum)
    return _halving_stage(
        ctx, "momentum", [(m, BASE_MOMENTUM) for m in sorted(MOMENTA)], "momentum", describe,
        prefer=prefer, why_prefer=why, likely=ctx.hyper.momentum)


def _weight_decay(ctx: Context) -> Outcome:
    def describe(v: Any) -> str:
        return f"weight decay {v:g}"
    prefer, why = _tied_to_start(describe, ctx.hyper.weight_decay)
    return _halving_stage(
        ctx, "weight_decay", WEIGHT_DECAYS[ctx.task.optimizer], "weight_decay", describe,
        prefer=prefer, why_prefer=why, likely=ctx.hyper.weight_decay)


def _confirm(ctx: Context) -> Outcome:
    """The range test again at the chosen momentum and weight decay. After an LR stage it
    only checks (short runs outrank a sweep); without one, Smith's rule sets the max LR."""
    outcome = _range_test(dataclasses.replace(ctx, later=()))
    if ctx.study.finished_stage("lr") is None:
        return outcome
    reading = outcome.range_test.reading if outcome.range_test else None
    chosen = ctx.max_lr()
    where = "" if reading is None else (
        f"; at these values the sweep's loss is lowest near {reading.anchor:.3g}, "
        f"{'above' if reading.anchor >= chosen else 'BELOW'} the chosen max LR {chosen:.3g}")
    return Outcome(Decision(), "kept the LR stage's choice" + where,
                   range_test=outcome.range_test, units=outcome.units)


def _reusable(ctx: Context, spec: TrialSpec) -> tuple[TrialResult, Path] | None:
    """A journaled full-length trial that trained exactly `spec`, with its weights on disk."""
    for result in ctx.study.trials():
        if result.state == "complete" and result.spec.save_model and \
                result.spec.trains_like(spec):
            path = ctx.settings.out / "weights" / Path(result.spec.save_model).name
            if distributed.from_main(path.exists()):  # rank 0 wrote it; all ranks agree
                return result, path
    return None


def _final_spec(ctx: Context, hyper: Hyper) -> TrialSpec:
    s = ctx.settings
    return TrialSpec(s.task, max_lr=hyper.max_lr or 0.0,
                     budget=Budget(epochs=hyper.epochs or ctx.planned().final_epochs),
                     momentum=hyper.momentum, weight_decay=hyper.weight_decay,
                     batch_size=hyper.batch_size, seed=s.seed, data_dir=s.data_dir,
                     label="final", eval_samples=None, keep="best", amp=s.amp,
                     compile=s.compile)


def natural_epochs(settings: Settings, task: Task) -> float:
    """The final training's length before any budget shortens it: --budget-epochs, else the
    task's own, else FALLBACK_EPOCHS."""
    return settings.budget_epochs or task.epochs or FALLBACK_EPOCHS


def _final_epochs(ctx: Context) -> float:
    """The final training's length under --budget-minutes, re-planned from the time left at
    the speed the runs really had (the ledger's running correction): shortened where the
    stages before it overran (never below the shortest 1cycle a short run trains), and,
    where the plan shortened the task's own length to fit, as much more of it as the time
    left buys, keeping one more training's time where the refine stage is to check the LR
    stage's correction. The plan timed 20 steps before any run, and on a shared machine a
    step's time moves by 30-50% (make bench-step-time): on the dev half at 3x (library
    d1f256b), transformer_majority's final was cut to 7.38 of its 8 epochs, and that tune
    ended at 0.72x of its budget. It is lengthened only once some run has measured the
    speed (with none, the 20 timed steps are all there is, and the plan's cut stands). The
    final comes before refine's corrections: they get what is left after it."""
    plan = ctx.planned()
    if plan.budget_seconds is None:
        return plan.final_epochs
    # a final's set-up and evaluations cost no more when it is longer (nor less when it is
    # shorter): scaling them all errs toward the shorter length
    fits = math.floor(100 * plan.final_epochs * ctx.left()) / 100
    if fits < plan.final_epochs:
        return max(fits, math.ceil(100 * plan.final_epochs * plan.shortest) / 100)
    natural = natural_epochs(ctx.settings, ctx.task)
    if plan.final_epochs >= natural or not ctx.ledger.measured:
        return plan.final_epochs
    keep = 2.0 if "refine" in ctx.later and lr_to_check(ctx.study) is not None else 1.0
    epochs = math.floor(100 * plan.final_epochs * ctx.left() / keep) / 100
    return min(natural, max(plan.final_epochs, epochs))


def _final(ctx: Context) -> Outcome:
    """The final 1cycle training at everything decided, on the whole validation set; a
    stage's full-length run at exactly these values is that training already. Where the
    budget is in minutes, it is re-planned from what is left (`_final_epochs`), unless
    such a run can be kept as it is."""
    epochs = ctx.planned().final_epochs
    spec = _final_spec(ctx, ctx.hyper)
    found = _reusable(ctx, spec)
    decision, resized = Decision(), ""
    if found is None and (planned := _final_epochs(ctx)) != epochs:
        speed = " at the speed the runs before it really had" if ctx.ledger.measured else ""
        if planned > epochs:
            natural = display.epochs(natural_epochs(ctx.settings, ctx.task))
            how_long = f"lengthened toward the full {natural} from the time left{speed}"
        else:
            how_long = f"shortened to fit the time left{speed}"
        resized = f"; the plan's {display.epochs(epochs)}, {how_long}"
        epochs, decision = planned, Decision(epochs=planned)
        spec = _final_spec(ctx, ctx.hyper.apply(decision))
    if found is not None:
        result, path = found
        if distributed.world().is_main:
            shutil.copyfile(path, ctx.settings.out / MODEL_FILE)
        how = f"the full-length run '{result.label}' trained exactly this; kept, not repeated"
        ctx.study.record_trial("final", dataclasses.replace(result, spec=spec))
    else:
        result, model = train(spec, task=ctx.task, device=ctx.settings.device)
        if distributed.world().is_main:
            torch.save(model.state_dict(), ctx.settings.out / MODEL_FILE)
        ctx.study.record_trial("final", result)
        ctx.progress.trial("final", result)
        how = f"{result.steps} steps"
    return Outcome(decision, _final_reason(result, epochs, how) + resized + kept_words(result),
                   final=_final_run(result),
                   units=0.0 if found is not None else epochs / ctx.planned().final_epochs)


def _final_run(result: TrialResult) -> FinalRun:
    kept = result.kept
    return FinalRun(result.model_val_loss, result.model_val_metric, result.steps,
                    result.spec.budget.epochs or 0.0, result.seconds,
                    None if kept is None else kept.step,
                    None if kept is None else result.val_loss,
                    None if kept is None else result.val_metric)


def _final_reason(result: TrialResult, epochs: float, how: str) -> str:
    metric = "" if result.val_metric is None else \
        f", accuracy {display.percent(result.val_metric)}"
    verdict = result.diagnosis.verdict if result.diagnosis else "-"
    return (f"1cycle for {display.epochs(epochs)} ({how}): validation loss "
            f"{display.number(result.val_loss)}{metric} ({verdict})")


def kept_words(result: TrialResult) -> str:
    """What a run that kept an earlier evaluation's weights says of them."""
    if result.kept is None:
        return ""
    metric = "" if result.kept.val_metric is None else \
        f", accuracy {display.percent(result.kept.val_metric)}"
    return (f"; the model keeps the weights of step {result.kept.step} of {result.steps}, "
            f"where its validation loss was lowest ({display.number(result.kept.val_loss)}"
            f"{metric}: picked on the validation set, so a little optimistic), not its end's")


def _corrections(hyper: Hyper, verdict: str, tried: Sequence[TrialSpec], optimizer: str,
                 decades: float = 0.5) -> list[tuple[Decision, str]]:
    """What the final run's diagnosis asks for, most likely first (Smith 2018: overfitting
    wants more regularization, Section 4.3; instability a lower LR, Section 4.1), then the
    other directions but the one the diagnosis rules out (a diagnosis read from one curve
    can be wrong: an LR at the edge of divergence can end still falling, "underfitting"),
    each a step of `decades` (REFINE_STEPS) away. Refine trains the first one untried."""
    lr, wd = hyper.max_lr or 0.0, hyper.weight_decay
    step = 10**decades
    more_wd = wd * step if wd > 0 else WEIGHT_DECAYS[optimizer][1]
    up = Decision(max_lr=float(f"{lr * step:.3g}"))
    down = Decision(max_lr=float(f"{lr / step:.3g}"))
    heavier = Decision(weight_decay=float(f"{more_wd:.2g}"))
    lighter = Decision(weight_decay=float(f"{wd / step:.2g}") if wd > 0 else 0.0)
    size = REFINE_STEPS[decades]
    order: list[tuple[Decision, str]]
    ruled_out: Decision | None = None
    if verdict == "overfitting":
        order = [(heavier, "it overfits: more weight decay"),
                 (down, "it overfits: a lower LR")]
        ruled_out = lighter
    elif verdict in UNSTEADY:
        order = [(down, f"it is {verdict}: a lower LR")]
        ruled_out = up
    elif verdict == NO_BETTER:  # an LR too high holds a model at the constant, as one too low
        order = [(up, "no better than a constant prediction: a higher LR"),
                 (down, "no better than a constant prediction: a lower LR")]
    elif verdict == "underfitting":
        order = [(up, "it underfits: a higher LR"), (lighter, "it underfits: less weight decay")]
        ruled_out = heavier
    else:
        order = []
    order += [(d, w) for d, w in ((down, f"{size} lower LR, at full length"),
                                  (up, f"{size} higher LR, at full length"),
                                  (heavier, "more weight decay, at full length"),
                                  (lighter, "less weight decay, at full length"))
              if d != ruled_out and all(d != o for o, _ in order)]
    out = []
    for decision, why in order:
        h = hyper.apply(decision)
        if decision != Decision(weight_decay=wd) and not any(
                same_lr(h.max_lr, t.max_lr) and h.weight_decay == t.weight_decay
                for t in tried):
            said = decades == max(REFINE_STEPS) or size in why  # the first step, as ever
            out.append((decision, why if said else f"{why} ({size} away)"))
    return out


CHECK_WHY = "the LR stage's short-run winner, before its horizon correction"


def _horizon_check(ctx: Context, final: TrialResult) -> tuple[Decision, str] | None:
    """The first correction to try when the LR stage's choice was its short runs' winner
    corrected for the horizon bias: that winner itself, at full length. Not after a final
    training that was unstable or diverged (a higher LR is the wrong way then)."""
    winner = lr_to_check(ctx.study)
    verdict = final.diagnosis.verdict if final.diagnosis else "balanced"
    if winner is None or verdict in UNSTEADY:
        return None
    return Decision(max_lr=winner), CHECK_WHY


def _scored_better(result: TrialResult, best: TrialResult, metric: str | None) -> bool:
    """Whether `result` scores above `best` by what the task is judged by: its metric where
    it has one (a classifier's accuracy; its loss can prefer a lower LR than its accuracy
    does), else the validation loss. For the horizon check, a choice between two equals
    (one has the short runs' evidence, the other the zoo's median correction): the better
    of the two full-length runs is kept, as a grid would, with no margin for noise."""
    if metric is not None and result.val_metric is not None and best.val_metric is not None:
        return result.val_metric > best.val_metric
    return _loss(result) < _loss(best)


def _loss(result: TrialResult) -> float:
    """The validation loss to compare by: a run without a finite one is the worst."""
    loss = result.val_loss
    return loss if loss is not None and math.isfinite(loss) else math.inf


def _clearly_better(result: TrialResult, best: TrialResult,
                    metric: str | None) -> tuple[bool, str]:
    """Whether a correction is kept, and what its line says: a validation loss lower beyond
    both runs' noise, and, where the task has a metric, no lower a score by it (a loss can
    prefer a lower LR than a classifier's accuracy does). Against an unstable run, a steady
    one that scores better is kept: that run's noise is its instability, the very symptom
    the correction treats, not a measurement's uncertainty (a GRU's 82% against 97% was
    once "within noise")."""
    steady = result.diagnosis is not None and result.diagnosis.verdict not in UNSTEADY
    if steady and best.diagnosis is not None and best.diagnosis.verdict in UNSTEADY \
            and _scored_better(result, best, metric):
        return True, f"kept: steady, where the run before it was {best.diagnosis.verdict}"
    comparison = Comparison.of([best, result])
    clearly = comparison.best is result and comparison.ranking[0].tied_with == []
    worse_score = metric is not None and result.val_metric is not None and \
        best.val_metric is not None and result.val_metric < best.val_metric
    if clearly and not worse_score:
        return True, "kept"
    if clearly:
        return False, f"lower, but its {metric} is lower too: not kept"
    lower = _loss(result) < _loss(best)
    if lower:
        return False, "lower, but within both runs' noise: not kept"
    higher_score = metric is not None and result.val_metric is not None and \
        best.val_metric is not None and result.val_metric > best.val_metric
    # a correction is read by its validation loss first: say so where the score disagrees
    though = f", though its {metric} is higher" if higher_score else ""
    return False, f"its validation loss is not lower{though}: not kept"


def _refine(ctx: Context) -> Outcome:
    """The closed loop: while a full-length training still fits in the budget, train the
    correction the current final run's diagnosis asks for; keep it if its validation loss is
    clearly lower (beyond both runs' noise) and its score no lower, or, against an unstable
    or diverged run, if it is steady and scores better (`_clearly_better`). First, where the
    LR stage kept one for it, the check of its horizon correction (kept if it scores better:
    `_scored_better`). Each correction's evidence is journaled."""
    # the final stage's own run (labelled "final"), not a refinement kept before a kill:
    # a resumed refine starts where the first one started and replays its journaled trials
    best = next((r for r in ctx.study.trials("final") if r.label == "final"), None)
    if best is None or best.state != "complete":
        return Outcome(Decision(), "nothing to refine: the final training did not complete")
    hyper, tried, steps = ctx.hyper, [best.spec], list[str]()
    check = _horizon_check(ctx, best)
    promised = lr_to_check(ctx.study)
    if promised is not None and check is None:
        steps.append(f"the check of the LR stage's horizon correction (max LR {promised:.3g}) "
                     f"was not trained: the final training was "
                     f"{best.diagnosis.verdict if best.diagnosis else 'unread'}, and a higher "
                     f"LR is the wrong way then")
    # a final training the final stage lengthened costs more than the plan's (`_final_epochs`)
    longer = (hyper.epochs or ctx.planned().final_epochs) / ctx.planned().final_epochs
    finer, exhausted, runs = iter(REFINE_STEPS), False, [best]
    decades = next(finer)
    while ctx.left() >= REFINE_MIN * longer:
        verdict: str = best.diagnosis.verdict if best.diagnosis else "balanced"
        if verdict == "underfitting" and best.diagnosis is not None and \
                best.diagnosis.evidence.get("beats_constant") is False:
            verdict = NO_BETTER
        options = _corrections(hyper, verdict, tried, ctx.task.optimizer, decades)
        checking = check is not None and len(tried) == 1
        if checking and check is not None:  # first; later, not again as "a higher LR"
            options = [check, *[o for o in options
                                if not same_lr(hyper.apply(o[0]).max_lr, check[0].max_lr)]]
        while not options and (decades := next(finer, 0.0)):
            options = _corrections(hyper, verdict, tried, ctx.task.optimizer, decades)
        if not options:
            exhausted = True
            break
        decision, why = options[0]
        candidate = hyper.apply(decision)
        label = f"refine {len(steps) + 1}: {decision.describe()}"
        spec = _final_spec(ctx, candidate).with_(
            label=label, save_model=ctx.weights_file("refine", label))
        result = ctx.trials("refine").map([spec])[0]
        tried.append(spec)
        if result.state != "complete":
            steps.append(f"{why} ({decision.describe()}) failed: {result.error}")
            continue
        runs.append(result)
        if checking:
            better = _scored_better(result, best, ctx.task.metric)
            outcome = "kept" if better else "not better: the correction stands"
        else:
            better, outcome = _clearly_better(result, best, ctx.task.metric)
        score = f"validation loss {display.number(result.val_loss)} against " \
                f"{display.number(best.val_loss)}"
        if ctx.task.metric is not None and result.val_metric is not None \
                and best.val_metric is not None:
            score = (f"{ctx.task.metric} {display.percent(result.val_metric)} against "
                     f"{display.percent(best.val_metric)} ({score})")
        steps.append(f"{why} ({decision.describe()}): {score}, {outcome}")
        if better:  # a new choice: its neighbours from half a decade again
            best, hyper = result, candidate
            finer = iter(REFINE_STEPS)
            decades = next(finer)
            ctx.study.record_trial("final", dataclasses.replace(
                result, spec=result.spec.with_(label=f"final ({label})")))
    settled = ""
    if exhausted:
        chosen, settled = _settled_by_seeds(ctx, runs, best, longer)
        if chosen is not best:
            best, hyper = chosen, hyper.apply(Decision(max_lr=chosen.spec.max_lr,
                                                       weight_decay=chosen.spec.weight_decay))
            ctx.study.record_trial("final", dataclasses.replace(
                chosen, spec=chosen.spec.with_(label=f"final ({chosen.label}, by seeds)")))
    if not steps:
        skipped = "" if check is None else (
            f" (not even the check of the LR stage's horizon correction, max LR "
            f"{check[0].max_lr:.3g}: the trainings before it cost more than planned)")
        return Outcome(Decision(), f"no time left for a full-length correction{skipped}")
    changed = Decision(max_lr=hyper.max_lr if hyper.max_lr != ctx.hyper.max_lr else None,
                       weight_decay=hyper.weight_decay
                       if hyper.weight_decay != ctx.hyper.weight_decay else None)
    if distributed.world().is_main and best.spec.save_model:
        shutil.copyfile(ctx.settings.out / "weights" / Path(best.spec.save_model).name,
                        ctx.settings.out / MODEL_FILE)
    reason = "; ".join(steps)
    if exhausted:
        reason += (f". Every correction the diagnosis allows, down to "
                   f"{REFINE_STEPS[min(REFINE_STEPS)]} step from the choice, was tried"
                   f"{settled}")
        if not settled and ctx.left() >= REFINE_MIN * longer:
            reason += (f". Nothing left to try: the budget's last {ctx.left():.1f} final "
                       f"trainings' time is left unused")
    final = _final_run(best) if changed != Decision() else None
    if final is not None:
        reason += (f". The final model is now the one trained with {changed.describe()}"
                   f"{kept_words(best)}")
    return Outcome(changed, reason, final=final)


def _settled_by_seeds(ctx: Context, runs: Sequence[TrialResult], best: TrialResult,
                      longer: float) -> tuple[TrialResult, str]:
    """With every correction tried and time still left: the choice and the steady runs tied
    with it within noise (as many of its nearest as a round fits, at most SETTLE_MOST in
    all), trained again with the seeds after the user's, a round at a time while a whole
    round fits. The choice is then the one with the best mean over the rounds (accuracy
    where the task has it, else the validation loss), the choice kept unless another is
    better. As short runs grow until they can tell, full-length ties get seeds until they
    can; the grids score a choice by its mean too. Returns the chosen run (at the user's
    seed: the one whose weights are delivered) and what the reason says of it ("" where
    nothing was tied or not even two runs fit in a round)."""
    def steady(r: TrialResult) -> bool:
        return r.diagnosis is None or r.diagnosis.verdict not in UNSTEADY

    def tied(r: TrialResult) -> bool:
        ranking = Comparison.of([best, r]).ranking
        return ranking[0].rank == ranking[1].rank

    near = sorted((r for r in runs if r is not best and steady(r) and tied(r)),
                  key=lambda r: abs(_loss(r) - _loss(best)))
    fits = math.floor(ctx.left() / longer - REFINE_MIN) + 1  # the runs a round has time for
    contenders = [best, *near[:min(SETTLE_MOST, fits) - 1]]
    if len(contenders) < 2:
        return best, ""
    seeds: dict[str, list[TrialResult]] = {c.label: [c] for c in contenders}
    rounds, seed, failed = 0, ctx.settings.seed, ""
    # a round starts only where all of it fits: a round half done counts for nothing
    while not failed and ctx.left() >= (len(contenders) - 1 + REFINE_MIN) * longer:
        seed += 1
        for c in contenders:
            spec = c.spec.with_(seed=seed, label=f"{c.label}, seed {seed}", save_model=None)
            result = ctx.trials("refine").map([spec])[0]
            if result.state != "complete":
                failed = f" (its seed {seed} run of '{c.label}' failed: {result.error})"
                break
            seeds[c.label].append(result)
        else:
            rounds += 1
    if rounds == 0:
        return best, f"; the runs tied with the choice were not told apart by seeds{failed}" \
            if failed else ""
    by_metric = ctx.task.metric is not None and all(
        r.val_metric is not None for runs_of in seeds.values() for r in runs_of[:rounds + 1])

    def mean(label: str) -> float:
        done = seeds[label][:rounds + 1]
        if by_metric:
            return statistics.fmean(r.val_metric or 0.0 for r in done)
        return statistics.fmean(_loss(r) for r in done)

    def show(label: str) -> str:
        return display.percent(mean(label)) if by_metric else display.number(mean(label))

    winner = (max if by_metric else min)(contenders, key=lambda c: mean(c.label))
    if mean(winner.label) == mean(best.label):  # no better than the choice: it stands
        winner = best
    what = ctx.task.metric if by_metric else "validation loss"
    listed = ", ".join(f"'{c.label}' {show(c.label)}" for c in contenders)
    outcome = "the choice stands" if winner is best else \
        f"'{winner.label}' is the choice now, by the mean"
    why_stopped = failed or ", until no other round fitted"
    return winner, (f"; the choice and the {len(contenders) - 1} steady "
                    f"run{'s' if len(contenders) > 2 else ''} within noise of it were trained "
                    f"again with {rounds} more seed{'s' if rounds > 1 else ''} each"
                    f"{why_stopped}: mean {what} {listed}: {outcome}")


STAGE_FUNCTIONS: dict[StageName, Callable[[Context], Outcome]] = {
    "range_test": _range_test,
    "batch_size": _batch_size,
    "lr": _lr,
    "momentum": _momentum,
    "weight_decay": _weight_decay,
    "confirm": _confirm,
    "final": _final,
    "refine": _refine,
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
        near = difflib.get_close_matches(unknown[0], STAGES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"unknown stage {unknown[0]!r}{hint}; stages are {', '.join(STAGES)}")
    if "refine" in chosen and "final" not in chosen:  # it would find nothing to correct
        raise ValueError("the refine stage corrects the final training: add 'final' to the "
                         "stages")
    chosen.append("range_test")  # every later stage needs the max_lr it finds
    return tuple(s for s in STAGES if s in chosen)  # the checklist's order, whatever was given


def tune(task_name: str, *, out: str | Path = "runs/tune", budget_epochs: float | None = None,
         budget_minutes: float | None = None, stages: Sequence[str] | None = None,
         resume: bool = False, seed: int = 0, data_dir: str | None = None,
         device: str | None = None, progress: Progress | None = None,
         executor: Executor | None = None, command: str | None = None, amp: str = "auto",
         compile: bool = False, started: float | None = None) -> StudyResult:
    """Choose LR, batch size, momentum and weight decay the disciplined way, then train.

    `budget_epochs` is the final training's length (the task's own `epochs` when not given,
    else FALLBACK_EPOCHS), and tuning then spends about TUNE_FINALS final trainings in all;
    `budget_minutes` is instead the wall time of everything, planned from the measured speed
    (the final keeps the task's length unless that would take over half the budget). With
    `resume`, finished stages and trials come from `out/study.db`. `executor` runs each
    stage's short runs (default: one after another here; a `RayExecutor` runs them
    concurrently on a cluster); their results go to the journal either way. Writes
    summary.json, report.html, train.py and model.pt into `out`; `command` is the command
    line that ran it, for the report. `amp` is every training's autocast ("auto": bf16 on a
    GPU that supports it; "off"; "bf16"; "fp16"), and `compile` runs the final training's
    forward through torch.compile (the range test and short runs stay eager: compiling each
    short run would cost more than it saves). `started` is the `time.perf_counter()` reading
    `budget_minutes` counts from (default: this call); the command passes its own start, so
    that importing torch counts as well, as a user's clock counts it.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if budget_epochs is not None and not (0 < budget_epochs < math.inf):
        raise ValueError(f"budget_epochs must be > 0 and finite, got {budget_epochs}")
    if budget_minutes is not None and not (0 < budget_minutes < math.inf):
        raise ValueError(f"budget_minutes must be > 0 and finite, got {budget_minutes}")
    if budget_epochs is not None and budget_minutes is not None:
        raise ValueError("give budget_epochs or budget_minutes, not both")
    now = time.perf_counter()
    if started is not None and not started <= now:
        raise ValueError(f"started must be a time.perf_counter() reading taken before this "
                         f"call, got {started} (now {now})")
    settings = Settings(task_name, output_folder(out, model_of="tune"), stage_list(stages),
                        budget_epochs, budget_minutes, seed, data_dir, device, amp, compile)
    team = distributed.world()
    # --budget-minutes is the wall time of everything, loading the data included
    started = now if started is None else started
    # built once, now: fails early with the task's own message if the data are missing, and
    # every trial in this process shares the datasets
    task = load_task(task_name, data_dir=data_dir).loaded()
    if task.runner is not None:
        _check_framework(task.runner, settings)
    elif "batch_size" in settings.stages and \
            loader_batch(task.datasets()[0], None, task.source, "") is not None:
        raise DisciplinedError(f"the batch_size stage cannot run on {task_name}: its training "
                               f"DataLoader fixes the batch at {task.batch_size}; leave the "
                               "stage out, or return a Dataset from build_datasets()")
    progress = progress or _Silent()
    ledger = Ledger()
    with Study(settings.out, resume=resume) as study:
        start = Hyper(batch_size=task.batch_size,
                      weight_decay=start_weight_decay(task.optimizer))
        config = settings.journal_config(team.size, start.weight_decay)
        previous = study.meta("config")
        # a study stopped before its plan (its budget too small for one) takes another
        # budget: nothing journaled so far depends on it
        replanned = previous is not None and study.meta("plan") is None and all(
            previous.get(k) == config.get(k) for k in {*previous, *config} - BUDGET_KEYS)
        if previous is not None and previous != config and not replanned:
            keys = [k for k in sorted({*previous, *config}) if previous.get(k) != config.get(k)]
            differ = "; ".join(f"{k} {display.setting(previous.get(k))} there, "
                               f"{display.setting(config.get(k))} here" for k in keys)
            # the start weight decay follows the task's optimizer: only where nothing else
            # differs did the version that began the study set it
            advice = ("its start weight decay was set by the version of disciplined that "
                      "began it, not by an option: finish it with that version") \
                if keys == ["start_weight_decay"] else "resume it with the same ones"
            raise DisciplinedError(f"{settings.out} holds a study with other settings "
                                   f"({differ}); {advice}, or use another --out")
        study.set_meta("config", config)
        ctx = Context(settings, task, study, start, None, progress, executor, ledger)
        records: list[StageRecord] = []
        for index, name in enumerate(settings.stages, start=1):
            ctx = dataclasses.replace(ctx, later=settings.stages[index:])
            record, reused = _run_stage(ctx, name, index)
            ledger.drew(name, pictures(study, record))
            if ctx.plan is not None:
                if reused and name != "final":  # `_final` trains outside the ledger
                    for r in study.trials(name):
                        if r.state == "complete":
                            fraction = r.steps / max(1, ctx.plan.final_steps)
                            ledger.observed(r.seconds, ctx.predicted(fraction,
                                                                     r.spec.eval_samples))
                ledger.stage_done(record.seconds, record.outcome.units)
            records.append(record)
            ctx = dataclasses.replace(ctx, hyper=ctx.hyper.apply(record.outcome.decision))
            if ctx.plan is None and record.outcome.range_test is not None:
                plan = _plan(ctx, started)
                ledger.before = plan.spent_before
                ctx = dataclasses.replace(
                    ctx, plan=plan, anchor=record.outcome.range_test.reading.anchor,
                    hyper=dataclasses.replace(ctx.hyper, epochs=plan.final_epochs))
                progress.plan(plan)
        summary = _summary(ctx, records, time.perf_counter() - started, command)
        if team.is_main:
            (settings.out / "summary.json").write_text(json.dumps(summary, indent=1))
            write_train_script(settings.out, summary)
            with study.main_alone():
                write_report(settings.out, study, left_out=_pictures_left_out(ctx))
        return StudyResult(settings.out, summary, study.reused)


def _pictures_left_out(ctx: Context) -> str | None:
    """Why report.html has no pictures, where the plan left them out; None where it has."""
    if ctx.plan is None or ctx.plan.pictures:
        return None
    return (f"The pictures were left out to keep the budget: drawing them would have taken "
            f"about {ctx.plan.report_seconds:.1f} s, more than "
            f"{PICTURES_SHARE:.0%} of --budget-minutes. `disciplined report "
            f"{ctx.settings.out}` draws them.")


def _check_framework(runner: Runner, settings: Settings) -> None:
    """What tune cannot do on a framework's task, said before any work: the framework owns
    the data loading (so the batch size) and the precision; and where range tests misjudge
    (transformers in the HF Trainer), the LR is decided by short runs."""
    where = f"on a {runner.framework} task"
    if "batch_size" in settings.stages:
        raise DisciplinedError(f"the batch_size stage cannot run {where}: its data loading "
                               "sets the batch size; leave the stage out")
    if settings.amp != "auto" or settings.compile:
        raise DisciplinedError(f"--amp and --compile cannot be given {where}: set its "
                               "precision and compilation in its own settings")
    if runner.lr_needs_runs and "range_test" in settings.stages \
            and "lr" not in settings.stages:
        raise DisciplinedError(f"{where} the range test alone does not decide the LR (its "
                               "reading misjudges transformers): keep the lr stage, whose "
                               "short runs decide it")


def _run_stage(ctx: Context, name: StageName, index: int) -> tuple[StageRecord, bool]:
    """A stage's record, and whether it came from the journal (finished before) rather than
    being run and journaled now. A stage resumed mid-way is journaled with at least the
    seconds its trials took, the ones reused from the journal included."""
    record = ctx.study.finished_stage(name)
    reused = record is not None
    if record is None:
        ctx.progress.stage(name, index, len(ctx.settings.stages),
                           None if ctx.plan is None else max(0.0, ctx.left()) *
                           ctx.final_cost())
        start = time.perf_counter()
        outcome = STAGE_FUNCTIONS[name](ctx)
        outcome = dataclasses.replace(outcome, units=outcome.units + ctx.ledger.current_units)
        seconds = max(time.perf_counter() - start, ctx.ledger.current_seconds)
        record = StageRecord(name, index, outcome, seconds)
        ctx.study.record_stage(record)
        record = distributed.from_main(record)  # under torchrun, rank 0's timings for all
    ctx.progress.decided(record)
    return record, reused


def _measure(ctx: Context) -> tuple[float, float, float]:
    """Seconds per training step, per validation sample and per trial set-up, timed on the
    engine that trains the trials (the range test's steps skip its bookkeeping)."""
    h, s = ctx.hyper, ctx.settings
    spec = TrialSpec(s.task, max_lr=ctx.max_lr(), budget=Budget(steps=MEASURE_STEPS + 2),
                     momentum=h.momentum, weight_decay=h.weight_decay,
                     batch_size=h.batch_size, seed=s.seed, data_dir=s.data_dir, amp=s.amp)
    if ctx.task.runner is not None:
        return ctx.task.runner.measure(spec, steps=MEASURE_STEPS, eval_samples=EVAL_SAMPLES,
                                       device=s.device)
    began = time.perf_counter()
    trainer, _ = build_trainer(spec, task=ctx.task, device=s.device, evaluate=False)
    setup = time.perf_counter() - began
    trainer.run(steps=2)  # first steps pay for lazy initialisation
    began = time.perf_counter()
    trainer.run(steps=MEASURE_STEPS)
    step = (time.perf_counter() - began) / MEASURE_STEPS
    _, val = ctx.task.datasets()
    samples = min(EVAL_SAMPLES, num_samples(val))
    began = time.perf_counter()
    evaluate(trainer.model, val, ctx.task.loss_fn, ctx.task.metric, trainer.device,
             max_samples=samples)
    return step, (time.perf_counter() - began) / samples, setup


def _most_pictures(stage: str) -> int:
    """The most pictures report.html draws for a stage (`report.pictures`)."""
    return MOST_PICTURES.get(stage, 1)


def _picture_units(stage: str, pictures: int) -> int:
    """A stage's pictures in units of the one timed when planning (a range test's, one
    panel): the final's two count as three, having two or three panels each."""
    if stage == "final" and pictures > 0:
        return pictures + 1
    return pictures


def most_picture_units(stages: Sequence[str]) -> int:
    """The most picture units report.html draws for these stages."""
    return sum(_picture_units(st, _most_pictures(st)) for st in stages)


def _report_seconds(ctx: Context) -> float:
    """What report.html will cost at most: one of its pictures (the first range test's)
    drawn and timed (the second drawing: the first pays for fonts and caches once), times
    the most picture units its stages may draw (`most_picture_units`); what a stage that
    ran nothing does not draw is given back as the stages finish (`Context.report_reserve`)."""
    record = ctx.study.finished_stage("range_test")
    if record is None or record.outcome.range_test is None:
        return 0.0
    with tempfile.TemporaryDirectory() as folder:
        plot_range_test(record.outcome.range_test, Path(folder) / "warm.png")
        began = time.perf_counter()
        plot_range_test(record.outcome.range_test, Path(folder) / "timed.png")
        took = time.perf_counter() - began
    return took * most_picture_units(ctx.settings.stages)


def minutes_to_give(seconds: float) -> float:
    """`seconds` as the minutes to advise, rounded up to a tenth: advice rounded down (0.04
    minutes shown as 0.0) would be refused again."""
    return math.ceil(seconds / 6) / 10


def _plan(ctx: Context, started: float) -> Plan:
    """Fix the final length and the wall budget, once, from speeds measured on the engine;
    what was spent before it is counted from `started` (the clock when tune began) to the
    end of its own measurements: loading the task, the first range test, and timing the
    steps and a picture."""
    saved = ctx.study.meta("plan")
    if saved is not None:
        return Plan.from_dict(saved)
    s = ctx.settings
    per_epoch = epoch_steps(ctx.task, ctx.hyper.batch_size)
    step, per_sample, setup = distributed.from_main(_measure(ctx))
    report = distributed.from_main(_report_seconds(ctx))
    spent = distributed.from_main(time.perf_counter() - started)
    epochs = natural_epochs(s, ctx.task)
    samples = val_samples(ctx.task)
    pictures = s.budget_minutes is None or report <= PICTURES_SHARE * s.budget_minutes * 60

    def plan_for(epochs: float, seconds: float | None, units: float | None) -> Plan:
        return Plan(epochs, max(2, math.ceil(epochs * per_epoch)), seconds, units,
                    samples, step, per_sample, setup, spent, report, pictures)

    draft = plan_for(epochs, None, math.inf)
    seconds, units = None, None
    if s.budget_minutes is not None:
        seconds = s.budget_minutes * 60
        final = dataclasses.replace(ctx, plan=draft).final_cost()
        room = FINAL_SHARE * max(0.0, seconds - spent)
        shortest = final * draft.shortest  # the shortest final a 1cycle has room in
        if room < shortest:
            need = minutes_to_give(spent + shortest / FINAL_SHARE)
            raise DisciplinedError(
                f"--budget-minutes {s.budget_minutes:g} is used up by loading the task and the "
                f"range test ({spent:.0f} s): give at least {need:g} minutes, or use "
                "--budget-epochs (with --resume, the range test done is kept)")
        if final > room:  # too long for the budget: shortened to fit
            epochs = max(round(epochs * room / final, 2), 1 / per_epoch)
    else:  # in trainings, so that no clock changes the decisions
        units = max(TUNE_FINALS, MIN_SHORT_RUNS * draft.shortest)
    plan = distributed.from_main(plan_for(epochs, seconds, units))  # rank 0's plan for every rank
    ctx.study.set_meta("plan", plan.to_dict())
    return plan


def _portable(spec: TrialSpec) -> TrialSpec:
    """The spec with a task file's and a data folder's paths made absolute, so that
    train.py runs from any folder."""
    task, data_dir = spec.task, spec.data_dir
    if Path(task).is_file():
        task = str(Path(task).resolve())
    if data_dir is not None:
        data_dir = str(Path(data_dir).resolve())
    return spec.with_(task=task, data_dir=data_dir, label="train.py", save_model=None)


def _summary(ctx: Context, records: list[StageRecord], wall: float,
             command: str | None) -> dict[str, Any]:
    """summary.json: the hyper-parameters, each stage's decision, the final numbers, and
    what made them (command, date, versions)."""
    from . import __version__
    final = next((r for r in reversed(records) if r.outcome.final is not None), None)
    run = final.outcome.final if final is not None else None
    # the last run journaled as final trained the model in model.pt (refine replaces it)
    finals = [r for r in ctx.study.trials("final") if r.state == "complete"]
    world = distributed.world().size
    return {
        "task": ctx.settings.task,
        "seed": ctx.settings.seed,
        "command": command,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"disciplined": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "hyperparameters": ctx.hyper.to_dict(),
        # the task file's choice (a framework's task brings its own optimizer)
        "optimizer": ctx.task.optimizer if ctx.task.runner is None else None,
        "stages": [{"name": r.name, "decision": r.outcome.decision.to_dict(),
                    "reason": r.outcome.reason, "trials": len(ctx.study.trials(r.name)),
                    "wall_seconds": r.seconds} for r in records],
        "final": {
            "val_loss": run.val_loss if run else None,
            "val_metric": run.val_metric if run else None,
            "epochs": run.epochs if run else None,
            # where the model has the weights of its lowest validation loss, not its end's
            "kept_step": run.kept_step if run else None,
            "end_val_loss": run.end_val_loss if run else None,
            "end_val_metric": run.end_val_metric if run else None,
            "wall_seconds": final.seconds if final else None,  # the stage's, this time
            # the run's own: an earlier stage's full-length run, where the final reused it
            "train_seconds": run.train_seconds if run else None,
            "spec": _portable(finals[-1].spec).to_dict() if finals else None,
            # what the best constant prediction scores (`ConstantBaseline`), where known
            "constant_loss": finals[-1].history.baseline
            if finals and finals[-1].history is not None else None,
        },
        "wall_seconds_total": wall,
        "budget_seconds": ctx.plan.budget_seconds if ctx.plan else None,
        "budget_final_trainings": ctx.plan.budget_units if ctx.plan else None,
        "data_parallel": {"world_size": world, "batch_size_per_process": ctx.hyper.batch_size,
                          "total_batch_size": ctx.hyper.batch_size * world},
    }
