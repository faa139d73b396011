"""The study journal on its own: trials and stage records round-trip exactly, lost trials
run again, an existing study needs resume, and settings live in its meta table."""

import sqlite3

import pytest

from disciplined.decisions import Decision
from disciplined.diagnose import Diagnosis
from disciplined.engine import History
from disciplined.errors import DisciplinedError
from disciplined.study import FinalRun, Outcome, StageRecord, Study, trial_key
from disciplined.trials import Budget, TrialResult, TrialSpec

SPEC = TrialSpec("digits", max_lr=0.2, budget=Budget(epochs=1.5), momentum=(0.97, 0.85),
                 label="momentum 0.97")


def complete(spec=SPEC, loss=0.25):
    history = History(step=[0, 1], lr=[0.02, 0.2], momentum=[0.97, 0.85],
                      train_loss=[2.3, 1.1], eval_step=[2], val_loss=[loss], val_metric=[0.9],
                      eval_seconds=[0.5], wall_seconds=0.6, samples_per_second=200.0,
                      epochs=1.5, stop_reason="budget")
    diagnosis = Diagnosis("inconclusive", "too few evaluations", {"points": 1})
    return TrialResult(spec, "complete", None, history, diagnosis, loss, 0.9, 2, 0.7)


def test_a_journaled_trial_comes_back_equal(tmp_path):
    with Study(tmp_path) as study:
        study.record_trial("momentum", complete())
        assert study.finished_trial("momentum", SPEC) == complete()
        assert study.finished_trial("weight_decay", SPEC) is None  # another stage's trial
        assert study.finished_trial("momentum", SPEC.with_(seed=1)) is None
        assert study.trials() == study.trials("momentum") == [complete()]


def test_a_trials_key_is_its_stage_and_whole_spec():
    assert trial_key("momentum", SPEC) == trial_key("momentum", TrialSpec.from_dict(
        SPEC.to_dict()))
    assert trial_key("momentum", SPEC) != trial_key("weight_decay", SPEC)
    assert trial_key("momentum", SPEC) != trial_key("momentum", SPEC.with_(weight_decay=0.0))


def test_a_lost_trial_is_not_reused_and_its_rerun_replaces_the_row(tmp_path):
    with Study(tmp_path) as study:
        study.record_trial("momentum", TrialResult.failed(SPEC, "lost", "WorkerCrashedError"))
        assert study.finished_trial("momentum", SPEC) is None
        study.record_trial("momentum", complete())
        assert [r.state for r in study.trials("momentum")] == ["complete"]
    with sqlite3.connect(tmp_path / "study.db") as db:
        assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 1


def test_stage_records_round_trip_in_the_checklists_order(tmp_path):
    final = StageRecord("final", 5, Outcome(Decision(), "1cycle for 3 epochs",
                                            final=FinalRun(0.1, 0.97, 69, 3.0, 2.5)), 2.6)
    momentum = StageRecord("momentum", 2, Outcome(Decision(momentum=(0.9, 0.85)),
                                                  "momentum 0.9 reached the lowest loss"), 4.0)
    with Study(tmp_path) as study:
        study.record_stage(final)
        study.record_stage(momentum)
        assert study.finished_stage("final") == final
        assert study.finished_stage("confirm") is None
        assert study.stages() == [momentum, final]


def test_an_existing_study_opens_again_only_to_resume_it(tmp_path):
    with Study(tmp_path) as study:
        study.set_meta("config", {"task": "digits", "seed": 0})
        study.record_trial("momentum", complete())
    with pytest.raises(DisciplinedError, match="pass --resume"):
        Study(tmp_path)
    with Study(tmp_path, resume=True) as study:
        assert study.meta("config") == {"task": "digits", "seed": 0}
        assert study.meta("plan", "none yet") == "none yet"
        assert study.finished_trial("momentum", SPEC) == complete()


def test_an_empty_journal_left_by_a_crash_before_any_trial_starts_fresh(tmp_path):
    Study(tmp_path).close()  # created the tables, recorded nothing
    with Study(tmp_path) as study:
        assert study.trials() == []


def test_a_stage_journaled_before_min_lr_was_derived_still_reads():
    # journals written before issue 11 stored min_lr beside max_lr, and a final stage
    # without its run's numbers
    outcome = Outcome.from_columns({"max_lr": 0.2, "min_lr": 0.02},
                                   {"reason": "Smith's rule", "range_test": None})
    assert outcome.decision == Decision(max_lr=0.2)
    assert outcome.final is None and outcome.search is None


def test_resuming_where_there_is_no_study_is_an_error_not_a_fresh_start(tmp_path):
    with pytest.raises(DisciplinedError, match="nothing to resume"):
        Study(tmp_path / "typo", resume=True)
    assert not (tmp_path / "typo").exists()  # nothing was created either
    with pytest.raises(DisciplinedError, match="nothing to resume"):
        Study(tmp_path, resume=True)  # an empty folder
