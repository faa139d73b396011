"""The checklist end to end (Smith 2018, Section 5): range test, batch size, momentum, weight
decay, a confirming range test, then the final 1cycle training, journaled for resume."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from . import distributed
from .errors import DisciplinedError
from .executors import Executor
from .range_test import task_range_test
from .searches import SearchResult, batch_size_search, momentum_search, weight_decay_search
from .study import JournalExecutor, Study
from .tasks import Task, load_task
from .trials import Budget, TrialResult, TrialSpec, build_trainer, result_from

STAGES = ("range_test", "batch_size", "momentum", "weight_decay", "confirm", "final")
DEFAULT_STAGES = ("range_test", "momentum", "weight_decay", "confirm", "final")
# Final-training epochs when no budget is given: what each built-in task needs under 1cycle.
DEFAULT_EPOCHS = {"digits": 10, "mnist1d": 30, "mnist1d-mlp": 30, "fashion-mnist": 4,
                  "fashion-mnist-mlp": 4}
FALLBACK_EPOCHS = 10
# Each short run trains this fraction of the final length (9 short runs ~ 1.5x the final)...
SHORT_FRACTION = 1 / 6
# ... but at least this many steps: fewer leave a 1cycle no room to rise and anneal, and the
# runs end before their losses part (measured on digits: 12-step runs all ended near the
# initial loss and tied).
MIN_SHORT_STEPS = 60
# Short runs in the stages, to split a budget given in minutes.
SHORT_RUNS = {"batch_size": 3, "momentum": 4, "weight_decay": 5}
START_WEIGHT_DECAY = 5e-4  # used by the first range test and the momentum runs
MOMENTUM_RANGE = (0.95, 0.85)
ONE_CYCLE_DIV = 10.0


class Progress(Protocol):
    """What `tune` tells the person watching; the library itself never prints. With `live`,
    each trial also shows a bar of its steps and losses."""

    live: bool

    def plan(self, plan: dict[str, Any]) -> None: ...

    def stage(self, name: str, index: int, total: int, eta_seconds: float | None) -> None: ...

    def trial(self, stage: str, result: TrialResult) -> None: ...

    def decided(self, name: str, decision: dict[str, Any], reason: str,
                seconds: float) -> None: ...


class _Silent:
    live = False

    def plan(self, plan: dict[str, Any]) -> None:
        pass

    def stage(self, name: str, index: int, total: int, eta_seconds: float | None) -> None:
        pass

    def trial(self, stage: str, result: TrialResult) -> None:
        pass

    def decided(self, name: str, decision: dict[str, Any], reason: str,
                seconds: float) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """What `tune` decided and measured; `summary` is summary.json's content."""

    directory: Path
    summary: dict[str, Any]
    reused_trials: int

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.summary["hyperparameters"])


def _stage_list(stages: Sequence[str] | None) -> list[str]:
    """The stages to run, in the checklist's order; the first range test always runs."""
    chosen = list(DEFAULT_STAGES if stages is None else stages)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
    chosen.append("range_test")  # every later stage needs the max_lr it finds
    return [s for s in STAGES if s in chosen]  # the checklist's order, whatever was given


def tune(task_name: str, *, out: str | Path = "runs/tune", budget_epochs: float | None = None,
         budget_minutes: float | None = None, stages: Sequence[str] | None = None,
         resume: bool = False, seed: int = 0, data_dir: str | None = None,
         device: str | None = None, progress: Progress | None = None,
         executor: Executor | None = None) -> StudyResult:
    """Choose LR, batch size, momentum and weight decay the disciplined way, then train.

    `budget_epochs` is the final training's length (short runs take 1/6 of it each);
    `budget_minutes` instead sizes everything to a wall-clock budget from the measured speed.
    With `resume`, finished stages and trials come from `out/study.db`. `executor` runs each
    stage's short runs (default: one after another here; a `RayExecutor` runs them
    concurrently on a cluster); their results go to the journal either way.
    """
    if budget_epochs is not None and budget_epochs <= 0:
        raise ValueError(f"budget_epochs must be > 0, got {budget_epochs}")
    if budget_minutes is not None and budget_minutes <= 0:
        raise ValueError(f"budget_minutes must be > 0, got {budget_minutes}")
    if budget_epochs is not None and budget_minutes is not None:
        raise ValueError("give budget_epochs or budget_minutes, not both")
    order = _stage_list(stages)
    team = distributed.world()
    task = load_task(task_name, data_dir=data_dir)
    task.datasets()  # fail early, with the task's own message, if the data are missing
    progress = progress or _Silent()
    started = time.perf_counter()
    out = Path(out)
    with Study(out, resume=resume) as study:
        config: dict[str, Any] = {"task": task_name, "budget_epochs": budget_epochs,
                                  "budget_minutes": budget_minutes, "stages": order,
                                  "seed": seed}
        if team.size > 1:  # a study keeps the total batch it was tuned for
            config["world_size"] = team.size
        previous = study.meta("config")
        if previous is not None and previous != config:
            raise DisciplinedError(f"{out} holds a study with other settings ({previous}); "
                                   "resume it with the same ones, or use another --out")
        study.set_meta("config", config)
        hp: dict[str, Any] = {"batch_size": task.batch_size, "momentum": list(MOMENTUM_RANGE),
                              "weight_decay": START_WEIGHT_DECAY, "max_lr": None,
                              "min_lr": None, "epochs": budget_epochs}
        stage_log: list[dict[str, Any]] = []
        plan: dict[str, Any] = {}

        def run_stage(name: str, index: int, body: Any) -> dict[str, Any]:
            done = study.finished_stage(name)
            if done is None:
                eta = plan.get("eta")
                progress.stage(name, index, len(order), eta)
                t0 = time.perf_counter()
                decision, reason, payload = body()
                seconds = time.perf_counter() - t0
                payload["reason"] = reason
                study.record_stage(name, index, decision, payload, seconds)
                # under torchrun, rank 0's record (its timings) is every rank's
                done = distributed.from_main(
                    {"decision": decision, "payload": payload, "seconds": seconds})
            progress.decided(name, done["decision"], done["payload"]["reason"],
                             done["seconds"])
            hp.update(done["decision"])
            if "max_lr" in done["decision"]:
                hp["min_lr"] = hp["max_lr"] / ONE_CYCLE_DIV
            stage_log.append({"name": name, "decision": done["decision"],
                              "reason": done["payload"]["reason"],
                              "trials": len(study.trials(name)),
                              "wall_seconds": done["seconds"]})
            return done

        def journal(stage: str) -> JournalExecutor:
            return JournalExecutor(study, stage, runner=executor, device=device,
                                   live=progress.live,
                                   on_result=lambda r: progress.trial(stage, r))

        def short_budget() -> Budget:
            return Budget(epochs=plan["short_epochs"])

        def search_payload(result: SearchResult) -> tuple[dict[str, Any], str, dict[str, Any]]:
            return result.decision, result.reason, {"search": result.to_dict()}

        for index, name in enumerate(order, start=1):
            if name in ("range_test", "confirm"):
                def range_body() -> tuple[dict[str, Any], str, dict[str, Any]]:
                    t0 = time.perf_counter()
                    rt = task_range_test(task, weight_decay=hp["weight_decay"],
                                     momentum=tuple(hp["momentum"]),
                                     batch_size=hp["batch_size"], seed=seed, device=device)
                    if rt.max_lr is None:
                        raise DisciplinedError(
                            f"the range test on {task_name} found no decreasing loss; check "
                            "the task (loss, data), or train with an explicit --max-lr")
                    decision = {"max_lr": rt.max_lr, "min_lr": rt.max_lr / ONE_CYCLE_DIV}
                    curve = rt.runs[0]
                    lowest = curve.lr[curve.smoothed.index(min(curve.smoothed))]
                    reason = (f"Smith's rule: the loss still falls clearly at "
                              f"{rt.max_lr:.3g}, before its minimum near {lowest:.3g}")
                    return decision, reason, {"range_test": rt.to_dict(),
                                              "seconds_per_step": (time.perf_counter() - t0)
                                              / max(1, len(rt.runs[0].lr))}
                done = run_stage(name, index, range_body)
                if name == "range_test":
                    _plan_budget(study, plan, hp, task, budget_epochs, budget_minutes, order,
                                 done["payload"].get("seconds_per_step", 0.0), started)
                    progress.plan(plan)
            elif name == "batch_size":
                def batch_body() -> tuple[dict[str, Any], str, dict[str, Any]]:
                    base = hp["batch_size"]
                    seconds = plan["short_seconds"]
                    result = batch_size_search(task_name, sizes=[base // 2, base, base * 2],
                                               seconds=seconds, seed=seed, data_dir=data_dir,
                                               executor=journal("batch_size"))
                    return search_payload(result)
                run_stage(name, index, batch_body)
            elif name == "momentum":
                run_stage(name, index, lambda: search_payload(momentum_search(
                    task_name, max_lr=hp["max_lr"], budget=short_budget(),
                    weight_decay=hp["weight_decay"], seed=seed, data_dir=data_dir,
                    batch_size=hp["batch_size"], executor=journal("momentum"))))
            elif name == "weight_decay":
                run_stage(name, index, lambda: search_payload(weight_decay_search(
                    task_name, max_lr=hp["max_lr"], budget=short_budget(),
                    momentum=tuple(hp["momentum"]), seed=seed, data_dir=data_dir,
                    batch_size=hp["batch_size"], executor=journal("weight_decay"))))
            elif name == "final":
                run_stage(name, index, lambda: _final(study, task_name, hp, seed, data_dir,
                                                      device, out, progress))
        if "final" not in order and hp["epochs"] is None:
            hp["epochs"] = plan.get("final_epochs")
        summary = _summary(study, task_name, hp, stage_log, time.perf_counter() - started)
        summary["data_parallel"] = {"world_size": team.size,
                                    "batch_size_per_process": hp["batch_size"],
                                    "total_batch_size": hp["batch_size"] * team.size}
        if team.is_main:
            (out / "summary.json").write_text(json.dumps(summary, indent=1))
            from .report import write_report, write_train_script

            write_train_script(out, summary)
            with study.main_alone():
                write_report(out, study)
        return StudyResult(out, summary, study.reused)


def _plan_budget(study: Study, plan: dict[str, Any], hp: dict[str, Any], task: Task,
                 budget_epochs: float | None, budget_minutes: float | None,
                 order: list[str], seconds_per_step: float, started: float) -> None:
    """Fix the final length (epochs) and the short runs' length from the budget, once: a
    resumed study reads the plan back, so its trials are the same trials."""
    saved = study.meta("plan")
    if saved is not None:
        plan.update(saved)
        hp["epochs"] = saved["final_epochs"]
        return
    train, _ = task.datasets()
    total_batch = hp["batch_size"] * distributed.world().size
    steps_per_epoch = math.ceil(len(train) / total_batch)  # type: ignore[arg-type]
    epoch_seconds = max(seconds_per_step * steps_per_epoch, 1e-6)
    if budget_minutes is not None:
        spent = time.perf_counter() - started
        left = budget_minutes * 60 - spent * (2 if "confirm" in order else 1)
        shorts = sum(n for s, n in SHORT_RUNS.items() if s in order) * SHORT_FRACTION
        epochs = max(left / (epoch_seconds * (1 + shorts)), 1.0)  # short runs' floor aside
        hp["epochs"] = round(epochs, 1)
    elif budget_epochs is None:
        hp["epochs"] = DEFAULT_EPOCHS.get(task.name, FALLBACK_EPOCHS)
    plan["final_epochs"] = hp["epochs"]
    plan["short_epochs"] = round(max(hp["epochs"] * SHORT_FRACTION,
                                     MIN_SHORT_STEPS / steps_per_epoch), 2)
    plan["short_seconds"] = plan["short_epochs"] * epoch_seconds
    split = {s: n * plan["short_seconds"] for s, n in SHORT_RUNS.items() if s in order}
    if "confirm" in order:
        split["confirm"] = seconds_per_step * 100
    split["final"] = hp["epochs"] * epoch_seconds
    plan["seconds_by_stage"] = {k: round(v, 1) for k, v in split.items()}
    plan["eta"] = sum(split.values())
    plan.update(distributed.from_main(dict(plan)))  # rank 0's measured speed sizes all
    hp["epochs"] = plan["final_epochs"]
    study.set_meta("plan", plan)


def _final(study: Study, task_name: str, hp: dict[str, Any], seed: int, data_dir: str | None,
           device: str | None, out: Path,
           progress: Progress) -> tuple[dict[str, Any], str, dict[str, Any]]:
    spec = TrialSpec(task_name, max_lr=hp["max_lr"], budget=Budget(epochs=hp["epochs"]),
                     momentum=tuple(hp["momentum"]), weight_decay=hp["weight_decay"],
                     batch_size=hp["batch_size"], seed=seed, data_dir=data_dir, label="final",
                     eval_samples=None)
    trainer, steps = build_trainer(spec, device=device)
    start = time.perf_counter()
    history = trainer.run(steps=steps)
    result = result_from(spec, history, time.perf_counter() - start)
    if distributed.world().is_main:
        torch.save(trainer.model.state_dict(), out / "model.pt")
    study.record_trial("final", result)
    progress.trial("final", result)
    metric = "" if result.val_metric is None else f", metric {result.val_metric:.4g}"
    verdict = result.diagnosis.verdict if result.diagnosis else "-"
    reason = (f"1cycle for {hp['epochs']:g} epochs ({steps} steps): validation loss "
              f"{result.val_loss:.4g}{metric} ({verdict})")
    return {}, reason, {"val_loss": result.val_loss, "val_metric": result.val_metric,
                        "steps": steps, "epochs": hp["epochs"],
                        "train_seconds": result.seconds}


def _summary(study: Study, task: str, hp: dict[str, Any], stages: list[dict[str, Any]],
             wall: float) -> dict[str, Any]:
    final = study.finished_stage("final")
    payload = final["payload"] if final else {}
    return {
        "task": task,
        "hyperparameters": {
            "max_lr": hp["max_lr"], "min_lr": hp["min_lr"],
            "momentum": list(hp["momentum"]), "weight_decay": hp["weight_decay"],
            "batch_size": hp["batch_size"], "epochs": hp["epochs"],
        },
        "stages": stages,
        "final": {
            "val_loss": payload.get("val_loss"), "val_metric": payload.get("val_metric"),
            "epochs": payload.get("epochs"), "wall_seconds": final["seconds"] if final else None,
        },
        "wall_seconds_total": sum(s["wall_seconds"] for s in stages) if stages else wall,
    }
