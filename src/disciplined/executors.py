"""Where trials run: one after another in this process, or as Ray tasks on a cluster.

Every executor has one method, `map(specs, on_result=None)`, which returns the results in the
order of `specs` and calls `on_result` on the driver as each trial finishes. Workers only
train and return a `TrialResult`; writing the journal stays with the caller, on the driver,
so no worker ever touches it.

Why Ray core tasks rather than Ray Tune: a stage's candidates are a short fixed list known in
advance (momentum 0.99/0.97/0.95/0.9, a weight-decay grid), with no early stopping and no
sampler, which is exactly a batch of remote function calls. Measured when issue 7 was filed,
on this project's 2-core machine (Ray 2.60): 4 trials of ~7 s took 23.9 s as tasks and
32.4 s under Tune, whose trials each start a fresh actor process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from . import distributed
from .errors import DisciplinedError
from .tasks import Task
from .trials import TrialResult, TrialSpec, run_trial

ExecutorKind = Literal["local", "ray"]

OnResult = Callable[[TrialResult], None]
# Ray retries a task whose worker process or node died this many times before the trial is
# recorded as failed; an exception inside the trial is a result, never retried.
MAX_RETRIES = 3
# Ray's errors for a task whose process or node went away: infrastructure, so the trial is
# "lost" and runs again when the study resumes. Any other Ray error fails the trial.
LOST_ERRORS = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ObjectLostError")
CANCEL_WAIT = 30.0  # seconds to wait for cancelled trials to stop
RAY_MISSING = ("--executor ray needs Ray, which is optional: pip install 'disciplined[ray]' "
               "(or pip install 'ray>=2.9') in this environment and on every node of the "
               "cluster")


class Executor(Protocol):
    """Runs trial specifications and returns their results in the same order."""

    def map(self, specs: Sequence[TrialSpec], *,
            on_result: OnResult | None = None) -> list[TrialResult]: ...


class LocalExecutor:
    """One trial after another in this process; `on_result` sees each as it finishes.
    `tasks` maps a task name to its already loaded `Task`, so trials of it do not load the
    task file and build its datasets again."""

    def __init__(self, *, device: str | None = None, on_result: OnResult | None = None,
                 progress: bool = False, tasks: Mapping[str, Task] | None = None) -> None:
        self.device, self.on_result, self.progress = device, on_result, progress
        self.tasks = dict(tasks or {})

    def map(self, specs: Sequence[TrialSpec], *,
            on_result: OnResult | None = None) -> list[TrialResult]:
        results = []
        for spec in specs:
            result = run_trial(spec, device=self.device, progress=self.progress,
                               task=self.tasks.get(spec.task))
            for callback in (on_result, self.on_result):
                if callback is not None:
                    callback(result)
            results.append(result)
        return results


class RayExecutor:
    """A stage's trials as concurrent Ray tasks, each reserving `cpus_per_trial` CPUs and
    `gpus_per_trial` GPUs.

    `address` is None (start a local Ray instance), "auto" (join the cluster this machine
    belongs to) or "HOST:PORT". Ray is initialised on first use and left running for the
    next stage; a Ray instance the caller started is used as it is. With `ship_code`, this
    package travels to the workers in the job's runtime environment, so nodes need its
    dependencies (torch, numpy, ...) but not `disciplined` itself. A trial whose worker
    dies is retried up to `max_retries` times, then returned with state "lost" (a resumed
    study runs it again; a trial that raised is "failed" for good).
    """

    def __init__(self, *, address: str | None = None, cpus_per_trial: float = 1.0,
                 gpus_per_trial: float = 0.0, max_retries: int = MAX_RETRIES,
                 ship_code: bool = True, on_result: OnResult | None = None,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        if cpus_per_trial <= 0:
            raise ValueError(f"cpus_per_trial must be > 0, got {cpus_per_trial}")
        if gpus_per_trial < 0:
            raise ValueError(f"gpus_per_trial must be >= 0, got {gpus_per_trial}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.ray = import_ray()
        self.address, self.cpus, self.gpus = address, cpus_per_trial, gpus_per_trial
        self.max_retries, self.ship_code, self.on_result = max_retries, ship_code, on_result
        self.init_kwargs = dict(init_kwargs or {})
        self._nodes: dict[str, str] = {}
        self._lost = tuple(getattr(self.ray.exceptions, name) for name in LOST_ERRORS
                           if hasattr(self.ray.exceptions, name))

    def start(self) -> None:
        """Connect to (or start) Ray now rather than at the first trial."""
        ray = self.ray
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"address": self.address, "log_to_driver": False,
                                  **self.init_kwargs}
        if self.ship_code:  # the package folder, this module's own
            env = dict(kwargs.pop("runtime_env", None) or {})
            env.setdefault("py_modules", []).append(str(Path(__file__).parent))
            kwargs["runtime_env"] = env
        try:
            ray.init(**kwargs)
        except ConnectionError as err:
            raise DisciplinedError(
                f"cannot reach a Ray cluster at {self.address!r} ({err}); start one with "
                "`ray start --head` or pass --ray-address HOST:PORT") from None

    def map(self, specs: Sequence[TrialSpec], *,
            on_result: OnResult | None = None) -> list[TrialResult]:
        if not specs:
            return []
        self.start()
        ray = self.ray
        remote = ray.remote(_remote_trial).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.max_retries,
            retry_exceptions=False)
        pending = {remote.remote(_portable(spec), _task_file(spec), self.cpus): i
                   for i, spec in enumerate(specs)}
        results: list[TrialResult | None] = [None] * len(specs)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    result = self._collect(ref, specs[i])
                    for callback in (on_result, self.on_result):
                        if callback is not None:
                            callback(result)
                    results[i] = result
        finally:  # interrupted (Ctrl-C, an error in a callback): stop what still runs
            for ref in pending:
                ray.cancel(ref, force=True)
            if pending:  # cancelling is asynchronous: return once the trials are stopped
                ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_WAIT)
        return [r for r in results if r is not None]

    def _collect(self, ref: Any, spec: TrialSpec) -> TrialResult:
        """A finished task's result, with the driver's spec and the node that ran it."""
        ray = self.ray
        try:
            result, node = ray.get(ref)
        except self._lost as err:  # the worker or its node died on every try
            result, node = TrialResult.failed(
                spec, "lost", f"{type(err).__name__}: the trial's Ray worker was lost "
                f"{self.max_retries + 1} times: {err}"), ""
        except ray.exceptions.RayError as err:  # Ray could not run it (runtime env, ...)
            result, node = TrialResult.failed(spec, "failed", f"{type(err).__name__}: {err}"), ""
        return dataclasses.replace(result, spec=spec, worker=self._node_address(node))

    def _node_address(self, node_id: str) -> str:
        """A node's address (its IP) from its id, as `ray.nodes()` lists it."""
        if node_id and node_id not in self._nodes:
            self._nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in self.ray.nodes()}
        return self._nodes.get(node_id, node_id)


def import_ray() -> Any:
    """Ray, or a DisciplinedError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise DisciplinedError(RAY_MISSING) from None
    return ray


def _portable(spec: TrialSpec) -> TrialSpec:
    """The spec with its data folder made absolute: a worker does not run in our folder."""
    if spec.data_dir is None:
        return spec
    return dataclasses.replace(spec, data_dir=str(Path(spec.data_dir).resolve()))


def _task_file(spec: TrialSpec) -> tuple[str, str] | None:
    """A task file's name and text, so that workers on other nodes need no copy of it."""
    path = Path(spec.task)
    if path.suffix == ".py" and path.is_file():
        return path.name, path.read_text()
    return None


def _remote_trial(spec: TrialSpec, task_file: tuple[str, str] | None,
                  cpus: float) -> tuple[TrialResult, str]:
    """Runs on a Ray worker: the trial, with torch limited to the CPUs Ray reserved, and the
    id of the node it ran on."""
    import ray
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    node = ray.get_runtime_context().get_node_id()
    if task_file is None:
        return run_trial(spec), node
    name, text = task_file
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"disciplined-task-{digest}" / name
    if not path.exists():  # one copy per node and file version, whatever the trial count
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)  # atomic: a concurrent trial never reads half a file
    return run_trial(dataclasses.replace(spec, task=str(path))), node


def make_executor(kind: str, *, ray_address: str | None = None, cpus_per_trial: float = 1.0,
                  gpus_per_trial: float = 0.0, device: str | None = None,
                  progress: bool = False, on_result: OnResult | None = None) -> Executor:
    """The executor a command line names: "local" or "ray". Ray and torchrun do not mix: a
    study runs its trials on Ray, or data-parallel under torchrun, not both."""
    if kind == "ray" and distributed.launched():
        raise ValueError("--executor ray cannot run under torchrun: run the study with Ray, "
                         "or data-parallel under torchrun, not both")
    if kind == "local":
        if ray_address is not None:
            raise ValueError("--ray-address needs --executor ray")
        return LocalExecutor(device=device, progress=progress, on_result=on_result)
    if kind == "ray":
        return RayExecutor(address=ray_address, cpus_per_trial=cpus_per_trial,
                           gpus_per_trial=gpus_per_trial, on_result=on_result)
    raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")
