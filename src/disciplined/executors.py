"""Where trials run. Only the local, sequential executor lives here; others (Ray) plug into
the same two-method interface."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from .trials import TrialResult, TrialSpec, run_trial


class Executor(Protocol):
    """Runs trial specifications and returns their results in the same order."""

    def map(self, specs: Sequence[TrialSpec]) -> list[TrialResult]: ...


class LocalExecutor:
    """One trial after another in this process; `on_result` sees each as it finishes."""

    def __init__(self, *, device: str | None = None,
                 on_result: Callable[[TrialResult], None] | None = None) -> None:
        self.device, self.on_result = device, on_result

    def map(self, specs: Sequence[TrialSpec]) -> list[TrialResult]:
        results = []
        for spec in specs:
            result = run_trial(spec, device=self.device)
            if self.on_result is not None:
                self.on_result(result)
            results.append(result)
        return results
