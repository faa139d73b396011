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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from . import distributed
from .decisions import Decision
from .errors import DisciplinedError
from .executors import Executor, LocalExecutor, OnResult
from .range_test import RangeTestResult
from .searches import SearchResult
from .tasks import Task
from .trials import TrialResult, TrialSpec

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


@dataclasses.dataclass(frozen=True)
class FinalRun:
    """The final training's numbers, as the journal keeps them: those of the model it
    delivers, which are its end's unless the weights of an earlier evaluation were kept
    (`kept_step`; then `end_val_loss` and `end_val_metric` are the end's)."""

    val_loss: float | None
    val_metric: float | None
    steps: int
    epochs: float
    train_seconds: float
    kept_step: int | None = None
    end_val_loss: float | None = None
    end_val_metric: float | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a stage decided, the one-sentence reason, and its evidence: a range test, a
    search, or the final training (with `units`, what the stage's trainings cost in final
    trainings, which the budget counts)."""

    decision: Decision
    reason: str
    range_test: RangeTestResult | None = None
    search: SearchResult | None = None
    final: FinalRun | None = None
    units: float = 0.0

    def evidence_dict(self) -> dict[str, Any]:
        """Everything but the decision, for the journal's payload column."""
        return {"reason": self.reason,
                "range_test": None if self.range_test is None else self.range_test.to_dict(),
                "search": None if self.search is None else self.search.to_dict(),
                "final": None if self.final is None else dataclasses.asdict(self.final),
                "units": self.units}

    @classmethod
    def from_columns(cls, decision: dict[str, Any], payload: dict[str, Any]) -> Outcome:
        def some(key: str) -> Any:
            return payload.get(key)

        return cls(Decision.from_dict(decision), payload["reason"],
                   None if some("range_test") is None else
                   RangeTestResult.from_dict(payload["range_test"]),
                   None if some("search") is None else SearchResult.from_dict(payload["search"]),
                   None if some("final") is None else FinalRun(**payload["final"]),
                   some("units") or 0.0)


@dataclasses.dataclass(frozen=True)
class StageRecord:
    """A finished stage as journaled: its name, its place in the checklist, its outcome and
    the wall seconds it took."""

    name: str
    position: int
    outcome: Outcome
    seconds: float


# A tune study's journal, and the model file `tune` and `train` both write.
STUDY_FILE = "study.db"
MODEL_FILE = "model.pt"


def output_folder(out: str | Path, model_of: Literal["tune", "train"] | None = None) -> Path:
    """`out` as a folder results can be written to, checked before any work is done (so that
    nothing computed is lost to a bad path): it, or its nearest existing parent, must be a
    folder. It is created later, when something is written. A command that writes a model
    (`model_of`) is refused a folder whose model another command wrote: `train` one holding
    a study, `tune` one holding a model but no study; the model would be replaced while the
    study's summary and report, or the training's history, still described the old one."""
    path = Path(out)
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise DisciplinedError(
                    f"--out {path}: {place} is a file, not a folder; give a folder (it is "
                    "created if missing). The file was left as it is.")
            break
    study, model = (path / STUDY_FILE).exists(), (path / MODEL_FILE).exists()
    if model_of == "train" and study:
        raise DisciplinedError(
            f"--out {path} holds a tune study ({STUDY_FILE}): train would replace its "
            f"{MODEL_FILE} under its summary and report; give another --out. Nothing was "
            "changed.")
    if model_of == "tune" and model and not study:
        raise DisciplinedError(
            f"--out {path} holds a {MODEL_FILE} that no tune study wrote (a train run's?): "
            "tune would replace it; give another --out, or move the folder's files. Nothing "
            "was changed.")
    return path


def trial_key(stage: str, spec: TrialSpec) -> str:
    """A trial's identity: its stage and its full specification, less where its weights are
    written (which moves with the study's folder) and which of them it keeps (its training
    is the same; a journal written before `keep` existed resumes with its runs)."""
    text = json.dumps({"stage": stage,
                       "spec": spec.with_(save_model=None, keep="last").to_dict()},
                      sort_keys=True)
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
        self.path = self.dir / STUDY_FILE
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
        if resume and not self.path.exists():  # a mistyped --out must not start afresh
            raise DisciplinedError(
                f"nothing to resume: {self.dir} holds no study ({self.path.name} is missing); "
                "check --out, or run without --resume to start one")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.dir / "study.lock", "w")  # noqa: SIM115 (held for life)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StudyBusyError(
                f"{self.dir} is in use by another disciplined process; wait for it to "
                f"finish or use another --out") from None
        try:
            if self.path.exists() and not resume and self._has_rows():
                raise DisciplinedError(
                    f"{self.path} already holds a study: pass --resume to continue it, or use "
                    f"another --out")
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:  # not a journal at all: say so, touch nothing
            self._lock_file.close()
            raise DisciplinedError(
                f"the journal {self.path} is unreadable ({err}); it was left as it is: start "
                f"the study in another --out") from None
        except DisciplinedError:
            self._lock_file.close()
            raise

    def _has_rows(self) -> bool:
        with sqlite3.connect(self.path) as db:
            try:
                return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] > 0 or \
                    db.execute("SELECT COUNT(*) FROM stages").fetchone()[0] > 0
            except sqlite3.OperationalError as err:
                if "no such table" not in str(err):
                    raise
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
        return TrialResult.from_dict(json.loads(row[0]))

    @_main_only
    def record_trial(self, stage: str, result: TrialResult) -> None:
        """One atomic transaction per finished trial."""
        payload = json.dumps(result.to_dict(), default=_jsonable)
        with _transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO trials (stage, key, spec, state, result, seconds, "
                "finished) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stage, trial_key(stage, result.spec), json.dumps(result.spec.to_dict()),
                 result.state, payload, result.seconds, time.time()))

    @_on_main
    def trials(self, stage: str | None = None) -> list[TrialResult]:
        query = "SELECT result FROM trials" + (" WHERE stage = ?" if stage else "") + \
            " ORDER BY id"
        rows = self.db.execute(query, (stage,) if stage else ()).fetchall()
        return [TrialResult.from_dict(json.loads(r[0])) for r in rows]

    # --- stages -------------------------------------------------------------------------

    @_on_main
    def finished_stage(self, name: str) -> StageRecord | None:
        """The journaled record of a stage; None if it never finished."""
        found = self._stage_records(" WHERE name = ?", (name,))
        return found[0] if found else None

    @_main_only
    def record_stage(self, record: StageRecord) -> None:
        """One atomic transaction per finished stage."""
        with _transaction(self.db):
            self.db.execute("INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?, ?)",
                            (record.name, record.position,
                             json.dumps(record.outcome.decision.to_dict()),
                             json.dumps(record.outcome.evidence_dict(), default=_jsonable),
                             record.seconds, time.time()))

    @_on_main
    def stages(self) -> list[StageRecord]:
        """Every finished stage, in the checklist's order."""
        return self._stage_records("", ())

    def _stage_records(self, where: str, args: tuple[Any, ...]) -> list[StageRecord]:
        # not shared across ranks itself: the public reads that call it are
        rows = self.db.execute("SELECT name, position, decision, payload, seconds FROM stages"
                               f"{where} ORDER BY position", args).fetchall()
        return [StageRecord(name, position,
                            Outcome.from_columns(json.loads(d), json.loads(p)), seconds)
                for name, position, d, p, seconds in rows]


class JournalExecutor:
    """Runs a stage's trials through `runner` (local by default, or Ray), taking finished ones
    from the journal and recording each new one, on this process, the moment it returns."""

    def __init__(self, study: Study, stage: str, *, runner: Executor | None = None,
                 device: str | None = None, on_result: OnResult | None = None,
                 live: bool = False, tasks: Mapping[str, Task] | None = None) -> None:
        self.study, self.stage, self.on_result = study, stage, on_result
        self.runner = runner or LocalExecutor(device=device, progress=live, tasks=tasks)

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

