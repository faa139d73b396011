"""The study journal: every trial and every stage decision in DIR/study.db (SQLite, WAL).

Each finished trial is one committed transaction, so a process killed at any moment loses at
most the trial in flight and never leaves a half-written row. A resumed study takes finished
trials and stages from the journal instead of running them again, so it reaches the same
decisions. One process at a time: an exclusive lock on DIR/study.lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from . import distributed
from .diagnose import Diagnosis
from .engine import History
from .errors import DisciplinedError
from .executors import Executor, LocalExecutor, OnResult
from .trials import Budget, TrialResult, TrialSpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stage TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    result TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stages (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    decision TEXT NOT NULL,
    payload TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished REAL NOT NULL
);
"""


P = ParamSpec("P")
R = TypeVar("R")


class StudyBusyError(DisciplinedError):
    """Another process holds the study directory."""


def spec_to_dict(spec: TrialSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_from_dict(data: dict[str, Any]) -> TrialSpec:
    fields = dict(data)
    fields["budget"] = Budget(**fields["budget"])
    fields["momentum"] = tuple(fields["momentum"])
    return TrialSpec(**fields)


def result_from_dict(data: dict[str, Any]) -> TrialResult:
    history = None if data["history"] is None else History(**data["history"])
    diagnosis = None if data["diagnosis"] is None else Diagnosis(**data["diagnosis"])
    return TrialResult(spec_from_dict(data["spec"]), data["state"], data["error"], history,
                       diagnosis, data["val_loss"], data["val_metric"], data["steps"],
                       data["seconds"], data.get("worker", ""))


def trial_key(stage: str, spec: TrialSpec) -> str:
    """A trial's identity: its stage and its full specification."""
    text = json.dumps({"stage": stage, "spec": spec_to_dict(spec)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _on_main(method: Callable[P, R]) -> Callable[P, R]:
    """A read: rank 0 reads the journal and every rank gets its answer (under torchrun)."""
    @functools.wraps(method)
    def shared(*args: P.args, **kwargs: P.kwargs) -> R:
        study = args[0]
        assert isinstance(study, Study)
        if study.alone:
            return method(*args, **kwargs)
        value = method(*args, **kwargs) if study.world.is_main else None
        return distributed.from_main(value)  # type: ignore[return-value]
    return shared


def _main_only(method: Callable[P, None]) -> Callable[P, None]:
    """A write: only rank 0 touches the journal."""
    @functools.wraps(method)
    def write(*args: P.args, **kwargs: P.kwargs) -> None:
        study = args[0]
        assert isinstance(study, Study)
        if study.world.is_main:
            method(*args, **kwargs)
    return write


class Study:
    """The journal of one tuning study in `directory`, opened for one process at a time.

    Under torchrun only rank 0 opens the files; the other ranks receive what it reads, so all
    of them take the same trials from the journal and reach the same decisions."""

    def __init__(self, directory: str | Path, *, resume: bool = False) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "study.db"
        self.world = distributed.world()
        self.reused = 0
        self.alone = self.world.size == 1  # reads need no broadcast
        error: DisciplinedError | None = None
        if self.world.is_main:
            try:
                self._open(resume)
            except DisciplinedError as err:
                error = err
        error = distributed.from_main(error)
        if error is not None:
            raise error

    @contextlib.contextmanager
    def main_alone(self) -> Iterator[None]:
        """Reads on rank 0 without the other ranks (to write the report, say)."""
        if not self.world.is_main:
            raise RuntimeError("only rank 0 reads the journal alone")
        before, self.alone = self.alone, True
        try:
            yield
        finally:
            self.alone = before

    def _open(self, resume: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.dir / "study.lock", "w")  # noqa: SIM115 (held for life)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StudyBusyError(
                f"{self.dir} is in use by another disciplined process; wait for it to "
                f"finish or use another --out") from None
        if self.path.exists() and not resume and self._has_rows():
            self._lock_file.close()
            raise DisciplinedError(
                f"{self.path} already holds a study: pass --resume to continue it, or use "
                f"another --out")
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def _has_rows(self) -> bool:
        with sqlite3.connect(self.path) as db:
            try:
                return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] > 0 or \
                    db.execute("SELECT COUNT(*) FROM stages").fetchone()[0] > 0
            except sqlite3.OperationalError:
                return False

    def close(self) -> None:
        if not self.world.is_main:
            return
        self.db.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- meta ---------------------------------------------------------------------------

    @_main_only
    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    @_on_main
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # --- trials -------------------------------------------------------------------------

    @_on_main
    def finished_trial(self, stage: str, spec: TrialSpec) -> TrialResult | None:
        """The journaled result of this trial; None if it never finished or its worker was
        lost (then it runs again, and its new result replaces the old row)."""
        row = self.db.execute("SELECT result, state FROM trials WHERE key = ?",
                              (trial_key(stage, spec),)).fetchone()
        if row is None or row[1] == "lost":
            return None
        return result_from_dict(json.loads(row[0]))

    @_main_only
    def record_trial(self, stage: str, result: TrialResult) -> None:
        """One atomic transaction per finished trial."""
        payload = json.dumps(result.to_dict(), default=_jsonable)
        with _transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO trials (stage, key, spec, state, result, seconds, "
                "finished) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stage, trial_key(stage, result.spec), json.dumps(spec_to_dict(result.spec)),
                 result.state, payload, result.seconds, time.time()))

    @_on_main
    def trials(self, stage: str | None = None) -> list[TrialResult]:
        query = "SELECT result FROM trials" + (" WHERE stage = ?" if stage else "") + \
            " ORDER BY id"
        rows = self.db.execute(query, (stage,) if stage else ()).fetchall()
        return [result_from_dict(json.loads(r[0])) for r in rows]

    @_on_main
    def count_trials(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    # --- stages -------------------------------------------------------------------------

    @_on_main
    def finished_stage(self, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT decision, payload, seconds FROM stages WHERE name = ?",
                              (name,)).fetchone()
        if row is None:
            return None
        return {"decision": json.loads(row[0]), "payload": json.loads(row[1]),
                "seconds": row[2]}

    @_main_only
    def record_stage(self, name: str, position: int, decision: dict[str, Any],
                     payload: dict[str, Any], seconds: float) -> None:
        with _transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?, ?)",
                            (name, position, json.dumps(decision, default=_jsonable),
                             json.dumps(payload, default=_jsonable), seconds, time.time()))

    @_on_main
    def stages(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT name, decision, payload, seconds FROM stages "
                               "ORDER BY position").fetchall()
        return [{"name": n, "decision": json.loads(d), "payload": json.loads(p), "seconds": s}
                for n, d, p, s in rows]


class JournalExecutor:
    """Runs a stage's trials through `runner` (local by default, or Ray), taking finished ones
    from the journal and recording each new one, on this process, the moment it returns."""

    def __init__(self, study: Study, stage: str, *, runner: Executor | None = None,
                 device: str | None = None, on_result: OnResult | None = None,
                 live: bool = False) -> None:
        self.study, self.stage, self.on_result = study, stage, on_result
        self.runner = runner or LocalExecutor(device=device, progress=live)

    def map(self, specs: Sequence[TrialSpec], *,
            on_result: OnResult | None = None) -> list[TrialResult]:
        callbacks = [c for c in (on_result, self.on_result) if c is not None]
        results: list[TrialResult | None] = []
        pending: list[TrialSpec] = []
        for spec in specs:
            done = self.study.finished_trial(self.stage, spec)
            if done is not None:
                self.study.reused += 1
                for callback in callbacks:
                    callback(done)
            else:
                pending.append(spec)
            results.append(done)

        def record(result: TrialResult) -> None:
            self.study.record_trial(self.stage, result)
            for callback in callbacks:
                callback(result)

        fresh = iter(self.runner.map(pending, on_result=record))
        return [r if r is not None else next(fresh) for r in results]


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the journal")

