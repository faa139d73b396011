"""The short runs of the paper's checklist (Smith 2018, Section 5): momentum, weight decay,
total batch size at equal time, and schedules — each a decision with its evidence."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from . import display, distributed
from .compare import Comparison, compare
from .decisions import Decision
from .defaults import BASE_MOMENTUM, MOMENTUM, start_weight_decay
from .diagnose import MIN_POINTS, diagnose
from .engine import History, evaluate, num_samples
from .executors import Executor
from .range_test import RangeTestResult, task_range_test
from .tasks import load_task
from .trials import Budget, TrialResult, TrialSpec, build_trainer, result_from

WeightDecayMode = Literal["grid", "combined", "fork"]
MOMENTA = (0.99, 0.97, 0.95, 0.9)  # Section 5: short runs at these maxima, cycling to 0.85
WD_UNKNOWN = (1e-3, 1e-4, 1e-5, 0.0)  # Section 5: the first grid when nothing is known
# An initial loss outside this range is "far from order 1": scale the grid with it.
LOSS_ORDER = (0.1, 10.0)
SCHEDULES = ("constant", "step", "clr", "sgdr", "one-cycle", "one-cycle-cos")


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """A search's decision, the one-sentence reason, its comparisons and its evidence.

    `notes` are what a person should read besides the reason (a size skipped, a grid
    scaled, a max LR found by a range test); `evidence` holds the numbers behind the decision
    for the journal and the report; `range_tests` the curves of a combined search."""

    name: str
    decision: Decision
    reason: str
    comparisons: list[Comparison]
    evidence: dict[str, Any]
    notes: tuple[str, ...] = ()
    range_tests: dict[str, RangeTestResult] = dataclasses.field(default_factory=dict)

    def merged(self) -> Comparison:
        """Every trial of every comparison, ranked together."""
        return Comparison.of([r for c in self.comparisons for r in c.results])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "decision": self.decision.to_dict(), "reason": self.reason,
                "evidence": self.evidence, "notes": list(self.notes),
                "comparisons": [c.to_dict() for c in self.comparisons],
                "range_tests": {k: r.to_dict() for k, r in self.range_tests.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        return cls(data["name"], Decision.from_dict(data["decision"]), data["reason"],
                   [Comparison.from_dict(c) for c in data["comparisons"]],
                   dict(data["evidence"]), tuple(data.get("notes", ())),
                   {k: RangeTestResult.from_dict(r)
                    for k, r in data.get("range_tests", {}).items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, indent=1)


def _verdict(c: Comparison, label: str) -> str:
    d = c.result(label).diagnosis
    return d.verdict if d else "failed"


def _tie_note(c: Comparison) -> str:
    tied = c.ranking[0].tied_with
    return f" (tied within noise with {', '.join(tied)})" if tied else ""


def _weight_decay(task: str, weight_decay: float | None, data_dir: str | None) -> float:
    """`weight_decay`, else the task's optimizer's start (`defaults.start_weight_decay`);
    the task is loaded only to learn its optimizer when none was given."""
    if weight_decay is not None:
        return weight_decay
    return start_weight_decay(load_task(task, data_dir=data_dir).optimizer)


def task_max_lr(task: str, *, weight_decay: float | None = None,
                momentum: tuple[float, float] = MOMENTUM, seed: int = 0,
                data_dir: str | None = None, batch_size: int | None = None) -> float:
    """The task's max LR by a default range test, for searches not given one (at the
    optimizer's start weight decay when `weight_decay` is None)."""
    result = task_range_test(load_task(task, data_dir=data_dir).loaded(),
                             weight_decay=weight_decay,
                             momentum=momentum, seed=seed, batch_size=batch_size)
    if result.max_lr is None:
        raise ValueError(f"the range test on {task} found no decreasing loss; give max_lr")
    return result.max_lr


def _max_lr(task: str, max_lr: float | None, seed: int, data_dir: str | None,
            batch_size: int | None, weight_decay: float | None = None
            ) -> tuple[float, tuple[str, ...]]:
    """`max_lr` if given, else a default range test's (at the search's weight decay); with a
    note saying where it came from."""
    if max_lr is not None:
        if not max_lr > 0:
            raise ValueError(f"max_lr must be > 0, got {max_lr}")
        return max_lr, ()
    found = task_max_lr(task, seed=seed, data_dir=data_dir, batch_size=batch_size,
                        weight_decay=weight_decay)
    return found, (f"max_lr {found:.3g} from a range test",)


def momentum_search(task: str, *, budget: Budget, max_lr: float | None = None,
                    policy: str = "one-cycle", values: Sequence[float] = MOMENTA,
                    base_momentum: float = BASE_MOMENTUM, weight_decay: float | None = None,
                    seed: int = 0, data_dir: str | None = None, batch_size: int | None = None,
                    executor: Executor | None = None) -> SearchResult:
    """Short runs at each maximum momentum, cycling down to `base_momentum` under 1cycle (or
    held constant under a constant LR); the lowest early validation loss wins. Without
    `max_lr`, a range test finds it first; without `weight_decay`, the optimizer's start."""
    weight_decay = _weight_decay(task, weight_decay, data_dir)
    peak, notes = _max_lr(task, max_lr, seed, data_dir, batch_size, weight_decay)
    cyclical = policy != "constant"
    candidates = [{"momentum": (m, base_momentum if cyclical else m),
                   "cycle_momentum": cyclical, "label": f"momentum {m:g}"} for m in values]
    c = compare(candidates, task, budget, executor=executor, max_lr=peak, policy=policy,
                weight_decay=weight_decay, seed=seed, data_dir=data_dir, batch_size=batch_size)
    best = c.best
    reason = (f"{best.label} reached the lowest early validation loss "
              f"({display.number(best.val_loss)}, {_verdict(c, best.label)}){_tie_note(c)}")
    return SearchResult("momentum", Decision(momentum=best.spec.momentum), reason, [c],
                        {"policy": policy, "values": list(values), "max_lr": peak}, notes)


def round_sig(x: float, digits: int = 1) -> float:
    """`x` to `digits` significant figures (weight decays are chosen to one)."""
    return 0.0 if x == 0 else float(f"{x:.{digits - 1}e}")


def weight_decay_grid(guess: float | None = None, loss_scale: float = 1.0) -> list[float]:
    """The first grid: 1e-3, 1e-4, 1e-5, 0 with no prior; c/10^0.5, c, c*10^0.5 around a
    guess c. Multiplied by `loss_scale` when the loss is far from order 1."""
    base = list(WD_UNKNOWN) if guess is None else \
        [guess * 10**-0.5, guess, guess * 10**0.5]
    return [round_sig(w * loss_scale) for w in base]


def next_weight_decay(ranked: Sequence[float], grid: Sequence[float],
                      spacing: float) -> float:
    """The one follow-up: bisect the exponent between the best and its better neighbour, or
    extrapolate one grid step when the best lies at an edge; one significant figure.

    `ranked` lists the tried values best first; `spacing` is the grid's step in decades.
    """
    best = ranked[0]
    nonzero = sorted(w for w in grid if w > 0)
    if best == 0:
        return round_sig(nonzero[0] / 10**spacing)
    if best == nonzero[-1]:
        return round_sig(best * 10**spacing)
    if best == nonzero[0]:
        return round_sig(best / 10**spacing)
    i = nonzero.index(best)
    neighbours = [nonzero[i - 1], nonzero[i + 1]]
    other = min(neighbours, key=lambda w: ranked.index(w) if w in ranked else len(ranked))
    return round_sig(10 ** ((math.log10(best) + math.log10(other)) / 2))


def initial_loss(task: str, seed: int = 0, data_dir: str | None = None) -> float:
    """Validation loss of the untrained model: the scale the weight decay is compared to."""
    t = load_task(task, data_dir=data_dir)
    _, val = t.datasets()
    model = t.model(seed)
    loss, _ = evaluate(model, val, t.loss_fn, None, torch.device("cpu"), max_samples=1024)
    return loss


def weight_decay_search(task: str, *, budget: Budget, max_lr: float | None = None,
                        guess: float | None = None, mode: WeightDecayMode = "grid",
                        momentum: tuple[float, float] = MOMENTUM, seed: int = 0,
                        data_dir: str | None = None, batch_size: int | None = None,
                        executor: Executor | None = None) -> SearchResult:
    """Weight decay by Section 5's recipe. `mode`: "grid" (first grid, then one bisection or
    extrapolation), "combined" (an LR range test at each value, Figure 10: LR and WD chosen
    together, so `max_lr` is not used), or "fork" (train once at the middle value to a
    plateau, then branch, Fig. 12). Without `max_lr`, a range test finds it first."""
    if mode not in ("grid", "combined", "fork"):
        raise ValueError(f"mode must be 'grid', 'combined' or 'fork', got {mode!r}")
    if guess is not None and not guess > 0:
        raise ValueError(f"guess must be a weight decay > 0, got {guess}")
    l0 = initial_loss(task, seed, data_dir)
    far = not LOSS_ORDER[0] <= l0 <= LOSS_ORDER[1]
    grid = weight_decay_grid(guess, l0 if far else 1.0)
    evidence: dict[str, Any] = {"initial_loss": l0, "grid": grid, "mode": mode}
    notes: tuple[str, ...] = ()
    if far:
        notes += (f"initial loss {l0:.3g} is far from order 1: the grid is scaled by it",)
    if mode == "combined":
        return _combined(task, grid, evidence, notes, momentum, seed, data_dir)
    peak, found = _max_lr(task, max_lr, seed, data_dir, batch_size)
    notes += found
    evidence["max_lr"] = peak
    common = dict(max_lr=peak, momentum=momentum, seed=seed, data_dir=data_dir,
                  batch_size=batch_size)
    if mode == "fork":
        return _fork(task, grid, budget, evidence, notes, common)
    spacing = 1.0 if guess is None else 0.5
    first = compare([{"weight_decay": w, "label": f"wd {w:g}"} for w in grid], task, budget,
                    executor=executor, **common)
    ranked = [first.result(r.label).spec.weight_decay for r in first.ranking
              if r.rank is not None]
    follow = next_weight_decay(ranked, grid, spacing)
    evidence["follow_up"] = follow
    comparisons = [first]
    if follow not in grid:
        comparisons.append(compare([{"weight_decay": follow, "label": f"wd {follow:g}"}],
                                   task, budget, executor=executor, **common))
    final = Comparison.of([r for c in comparisons for r in c.results])
    best = final.best
    reason = (f"{best.label} reached the lowest early validation loss "
              f"({display.number(best.val_loss)}, {_verdict(final, best.label)}) after a grid of "
              f"{len(grid)} and a follow-up at {follow:g}{_tie_note(final)}")
    return SearchResult("weight decay", Decision(weight_decay=best.spec.weight_decay), reason,
                        [final], evidence, notes)


def _combined(task: str, grid: list[float], evidence: dict[str, Any], notes: tuple[str, ...],
              momentum: tuple[float, float], seed: int, data_dir: str | None) -> SearchResult:
    t = load_task(task, data_dir=data_dir)
    tests = {wd: task_range_test(t, weight_decay=wd, momentum=momentum, seed=seed, val=True)
             for wd in grid}
    lowest = {wd: min(r.runs[0].val_loss) for wd, r in tests.items()}
    best = min(lowest, key=lambda wd: lowest[wd])
    evidence["range_tests"] = {str(wd): {"max_lr": r.max_lr, "lowest_val_loss": lowest[wd]}
                               for wd, r in tests.items()}
    reason = (f"the range test at weight decay {best:g} reached the lowest validation loss "
              f"({display.number(lowest[best])}); its max_lr is {tests[best].max_lr:.3g}")
    return SearchResult("weight decay (combined with LR)",
                        Decision(weight_decay=best, max_lr=tests[best].max_lr), reason, [],
                        evidence, notes, {f"wd {wd:g}": r for wd, r in tests.items()})


def _fork(task: str, grid: list[float], budget: Budget, evidence: dict[str, Any],
          notes: tuple[str, ...], common: dict[str, Any]) -> SearchResult:
    nonzero = sorted(w for w in grid if w > 0)
    middle = nonzero[len(nonzero) // 2] if nonzero else 0.0
    spec = TrialSpec(task, budget=budget, weight_decay=middle, label=f"wd {middle:g}",
                     **common)
    trainer, steps = build_trainer(spec)
    # Train at the middle value until the validation loss plateaus (diagnosed balanced on
    # enough evaluations), or up to half the budget, whichever comes first.
    prefix_cap = steps // 2
    while trainer.step < prefix_cap:
        trainer.run(steps=min(trainer.eval_every, prefix_cap - trainer.step))
        if len(trainer.history.val_loss) >= 2 * MIN_POINTS and \
                diagnose(trainer.history).verdict == "balanced":
            break
    prefix = trainer.step
    snap = trainer.snapshot()
    results: list[TrialResult] = []
    for wd in grid:
        trainer.restore(snap)
        for group in trainer.optimizer.param_groups:
            group["weight_decay"] = wd
        start = time.perf_counter()
        history = trainer.run(steps=steps - prefix)
        branch = dataclasses.replace(spec, weight_decay=wd, label=f"wd {wd:g}")
        results.append(result_from(branch, _after(history, prefix), time.perf_counter() - start))
    comparison = Comparison.of(results)
    independent = len(grid) * steps
    forked = prefix + len(grid) * (steps - prefix)
    evidence.update(prefix_steps=prefix, branch_steps=steps - prefix,
                    steps_forked=forked, steps_independent=independent,
                    steps_saved=independent - forked)
    best = comparison.best
    reason = (f"{best.label} reached the lowest validation loss after the fork "
              f"({display.number(best.val_loss)}){_tie_note(comparison)}; forking at step "
              f"{prefix} saved "
              f"{independent - forked} of {independent} steps")
    return SearchResult("weight decay (snapshot fork)",
                        Decision(weight_decay=best.spec.weight_decay), reason, [comparison],
                        evidence, notes)


def _after(history: History, prefix: int) -> History:
    """The part of a history after `prefix` steps (a branch's own curve)."""
    keep = [i for i, s in enumerate(history.eval_step) if s > prefix]
    return dataclasses.replace(
        history, step=history.step[prefix:], lr=history.lr[prefix:],
        momentum=history.momentum[prefix:], train_loss=history.train_loss[prefix:],
        eval_step=[history.eval_step[i] for i in keep],
        val_loss=[history.val_loss[i] for i in keep],
        val_metric=[history.val_metric[i] for i in keep],
        eval_seconds=[history.eval_seconds[i] for i in keep])


def schedule_search(task: str, *, budget: Budget, max_lr: float | None = None,
                    policies: Sequence[str] = SCHEDULES,
                    momentum: tuple[float, float] = MOMENTUM,
                    weight_decay: float | None = None, seed: int = 0,
                    data_dir: str | None = None, batch_size: int | None = None,
                    executor: Executor | None = None) -> SearchResult:
    """Every policy with constant and with cyclical momentum, at an equal step budget.
    Without `max_lr`, a range test finds it first; without `weight_decay`, the optimizer's
    start."""
    weight_decay = _weight_decay(task, weight_decay, data_dir)
    peak, notes = _max_lr(task, max_lr, seed, data_dir, batch_size, weight_decay)
    candidates = [{"policy": p, "cycle_momentum": cyc,
                   "label": f"{p}, {'cyclical' if cyc else 'constant'} momentum"}
                  for p in policies for cyc in (False, True)]
    c = compare(candidates, task, budget, executor=executor, max_lr=peak, momentum=momentum,
                weight_decay=weight_decay, seed=seed, data_dir=data_dir, batch_size=batch_size)
    best = c.best
    reason = f"{best.label} reached the lowest validation loss ({display.number(best.val_loss)})" \
             f"{_tie_note(c)}"
    return SearchResult("schedule", Decision(policy=best.spec.policy,
                                             cycle_momentum=best.spec.cycle_momentum),
                        reason, [c], {"policies": list(policies), "max_lr": peak}, notes)


def measure_throughput(spec: TrialSpec, steps: int = 12) -> float:
    """Training samples per second at the spec's batch size (first two steps not timed)."""
    trainer, _ = build_trainer(spec.with_(budget=Budget(steps=steps + 2)), evaluate=False)
    trainer.run(steps=2)
    start = time.perf_counter()
    trainer.run(steps=steps)
    return steps * trainer.batch_size / (time.perf_counter() - start)


def batch_size_search(task: str, *, sizes: Sequence[int], seconds: float,
                      momentum: tuple[float, float] = MOMENTUM,
                      weight_decay: float | None = None, seed: int = 0,
                      data_dir: str | None = None,
                      executor: Executor | None = None) -> SearchResult:
    """Total batch size compared at equal wall-clock time (Remark 4): each size gets its own
    range test (larger batches allow larger LRs) and a 1cycle sized to fill `seconds` at its
    measured throughput. A size that does not fit (memory, or larger than the training set)
    is skipped with a note. Without `weight_decay`, the optimizer's start."""
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    bad = [size for size in sizes if size < 1]
    if not sizes or bad:
        raise ValueError(f"batch sizes must be positive ints, got {list(sizes)}")
    t = load_task(task, data_dir=data_dir)
    weight_decay = start_weight_decay(t.optimizer, weight_decay)
    train, _ = t.datasets()
    n_train = num_samples(train)
    notes: list[str] = []
    specs: list[TrialSpec] = []
    measured: dict[str, Any] = {}
    for size in sizes:
        label = f"batch {size}"
        if size > n_train:
            notes.append(f"{label}: skipped, it exceeds the {n_train} training samples")
            continue
        base = TrialSpec(task, max_lr=1.0, budget=Budget(steps=2), batch_size=size,
                         momentum=momentum, weight_decay=weight_decay, seed=seed,
                         data_dir=data_dir, label=label)
        try:
            rate = distributed.from_main(measure_throughput(base))  # one plan for all ranks
            test = task_range_test(t, weight_decay=weight_decay, momentum=momentum,
                                   batch_size=size, seed=seed)
        except (MemoryError, torch.OutOfMemoryError) as err:
            notes.append(f"{label}: skipped, out of memory ({type(err).__name__})")
            continue
        if test.max_lr is None:
            notes.append(f"{label}: skipped, the range test found no decreasing loss")
            continue
        steps = max(4, int(seconds * rate / size))
        measured[label] = {"samples_per_second": rate, "max_lr": test.max_lr, "steps": steps}
        specs.append(base.with_(max_lr=test.max_lr,
                                budget=Budget(steps=steps, seconds=seconds)))
    if not specs:
        raise ValueError(f"no batch size could run: {'; '.join(notes)}")
    c = compare(specs, executor=executor)
    best = c.best
    reason = (f"{best.label} reached the lowest validation loss in {seconds:g} s "
              f"({display.number(best.val_loss)}){_tie_note(c)}")
    return SearchResult("total batch size", Decision(batch_size=best.spec.batch_size,
                                                     max_lr=best.spec.max_lr), reason, [c],
                        {"seconds": seconds, "measured": measured}, tuple(notes))
