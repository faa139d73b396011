"""Short comparison runs: several configurations as independent trials, ranked by their early
validation loss, with differences inside the measured noise reported as ties."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .diagnose import Verdict
from .executors import Executor, LocalExecutor
from .trials import Budget, TrialResult, TrialSpec

# Two final losses closer than this many combined noise levels are a tie, not a win.
TIE_SIGMAS = 2.0


@dataclasses.dataclass(frozen=True)
class Ranked:
    """One trial's place: trials tied within the noise share a rank."""

    rank: int | None
    label: str
    val_loss: float | None
    val_metric: float | None
    verdict: Verdict | None
    tied_with: list[str]
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Trials run side by side and their ranking (best first; failed trials last)."""

    results: list[TrialResult]
    ranking: list[Ranked]

    @classmethod
    def of(cls, results: Sequence[TrialResult]) -> Comparison:
        """The comparison of these results, ranked."""
        return cls(list(results), rank(results))

    @property
    def best(self) -> TrialResult:
        """The first-ranked trial (the lowest early validation loss)."""
        label = self.ranking[0].label
        return next(r for r in self.results if r.label == label)

    def result(self, label: str) -> TrialResult:
        return next(r for r in self.results if r.label == label)

    def to_dict(self) -> dict[str, Any]:
        return {"ranking": [dataclasses.asdict(r) for r in self.ranking],
                "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls([TrialResult.from_dict(r) for r in data["results"]],
                   [Ranked(**r) for r in data["ranking"]])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)


def _noise(result: TrialResult) -> float:
    if result.diagnosis is None:
        return 0.0
    return float(result.diagnosis.evidence.get("noise", 0.0))


def rank(results: Sequence[TrialResult]) -> list[Ranked]:
    """Order by final validation loss (metric breaks exact ties; diverged trials go last); a
    trial whose loss is within TIE_SIGMAS x the combined noise of the group's leader shares
    the leader's rank."""
    def key(r: TrialResult) -> tuple[bool, float, float]:
        loss = r.val_loss if r.val_loss is not None and math.isfinite(r.val_loss) else math.inf
        diverged = r.diagnosis is not None and r.diagnosis.verdict == "diverged"
        return (diverged, loss, -(r.val_metric or 0.0))

    done = sorted((r for r in results if r.state == "complete"), key=key)
    ranked: list[Ranked] = []
    leader: TrialResult | None = None
    leader_rank = 0
    groups: dict[int, list[str]] = {}
    for position, r in enumerate(done, start=1):
        tie = False
        if leader is not None and leader.val_loss is not None and r.val_loss is not None \
                and math.isfinite(r.val_loss) and math.isfinite(leader.val_loss):
            margin = TIE_SIGMAS * math.hypot(_noise(leader), _noise(r))
            tie = abs(r.val_loss - leader.val_loss) <= margin
        if not tie:
            leader, leader_rank = r, position
        groups.setdefault(leader_rank, []).append(r.label)
        ranked.append(Ranked(leader_rank, r.label, r.val_loss, r.val_metric,
                             r.diagnosis.verdict if r.diagnosis else None, []))
    ranked = [dataclasses.replace(x, tied_with=[lbl for lbl in groups[x.rank or 0]
                                                if lbl != x.label]) for x in ranked]
    ranked += [Ranked(None, r.label, None, None, None, [], r.error)
               for r in results if r.state != "complete"]
    return ranked


def _label(candidate: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in candidate.items() if k != "label")


def compare(
    candidates: Sequence[TrialSpec | Mapping[str, Any]],
    task: str | None = None,
    budget: Budget | None = None,
    *,
    executor: Executor | None = None,
    **defaults: Any,
) -> Comparison:
    """Run every candidate as an independent trial (same seed: same initial weights, same
    data order) and rank them by early validation loss, each with its diagnosis.

    A candidate is a `TrialSpec`, or a dict of the fields that differ, completed from
    `task`, `budget` and `defaults` (e.g. `max_lr=0.1`).
    """
    specs = []
    for c in candidates:
        if isinstance(c, TrialSpec):
            specs.append(c)
            continue
        fields = {"task": task, "budget": budget, **defaults, **c}
        fields.setdefault("label", _label(c))
        if fields["task"] is None or fields["budget"] is None:
            raise ValueError("a candidate dict needs task and budget (give them to compare)")
        specs.append(TrialSpec(**fields))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"candidate labels must be unique, got {labels}")
    return Comparison.of((executor or LocalExecutor()).map(specs))
