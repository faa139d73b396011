"""`tune` end to end on digits, the journal's resume after SIGKILL, task files, the report."""

import base64
import dataclasses
import io
import itertools
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest
import torch
from hypothesis import given, strategies
from typer.testing import CliRunner

from disciplined import cli, display, jobs, recipe
from disciplined.cli import app
from disciplined.compare import Comparison
from disciplined.decisions import Decision, Hyper
from disciplined.defaults import USUAL_MAX_LR
from disciplined.diagnose import Diagnosis, diagnose
from disciplined.engine import History
from disciplined.errors import DisciplinedError
from disciplined.executors import LocalExecutor
from disciplined.halving import RungPlan, successive_halving
from disciplined.range_test import task_range_test
from disciplined.recipe import (
    CHECK_WHY,
    UNSTEADY,
    Context,
    Ledger,
    Plan,
    Settings,
    _clearly_better,
    _corrections,
    _final_epochs,
    _scored_better,
    from_above,
    horizon_bias,
    horizon_corrected,
    lowest_tied_lr,
    lr_candidates,
    lr_to_check,
    minutes_to_give,
    nearest,
    shares,
    tune,
    wider_than_a_cycle,
)
from disciplined.report import _comparison, build_report, pictures
from disciplined.study import Study, StudyBusyError
from disciplined.tasks import load_task
from disciplined.trials import Budget, TrialResult, TrialSpec

runner = CliRunner()
TINY = {"budget_epochs": 4}


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def test_tune_writes_a_complete_summary(digits_study):
    out, result = digits_study
    s = json.loads((out / "summary.json").read_text())
    assert s == result.summary
    assert s["task"] == "digits" and s["optimizer"] == "sgd"
    hp = s["hyperparameters"]
    assert set(hp) >= {"max_lr", "min_lr", "momentum", "weight_decay", "batch_size", "epochs"}
    assert hp["min_lr"] == pytest.approx(hp["max_lr"] / 10)
    assert hp["momentum"][0] in (0.99, 0.97, 0.95, 0.9) and hp["momentum"][1] == 0.85
    assert [st["name"] for st in s["stages"]] == ["range_test", "lr", "momentum",
                                                  "weight_decay", "final", "refine"]
    for st in s["stages"]:
        assert set(st) >= {"name", "decision", "trials", "wall_seconds"}
    assert s["stages"][1]["trials"] >= 2 and "max_lr" in s["stages"][1]["decision"]
    assert s["final"]["val_metric"] > 0.9 and s["final"]["epochs"] == 4
    assert s["wall_seconds_total"] > 0 and s["budget_final_trainings"] >= 4
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_the_report_is_self_contained_and_its_images_decode(digits_study):
    out, _ = digits_study
    page = (out / "report.html").read_text()
    parser = Images()
    parser.feed(page)
    # at most one picture per stage, two for the final, however many rungs ran: the ones
    # the budget reserves drawing time for (report.pictures, Context.report_reserve)
    with Study(out, resume=True) as study:
        drawn = {r.name: pictures(study, r) for r in study.stages()}
    assert len(parser.sources) == sum(drawn.values())
    assert drawn["range_test"] == 1 and drawn["lr"] == 1 and drawn["final"] == 2
    assert all(n <= recipe.MOST_PICTURES.get(name, 1) for name, n in drawn.items())
    for src in parser.sources:
        assert src.startswith("data:image/png;base64,")  # nothing fetched over a network
        png = base64.b64decode(src.split(",", 1)[1])
        assert matplotlib.image.imread(io.BytesIO(png), format="png").shape[0] > 100
    text = " ".join(parser.text)
    for expected in ("Chosen hyper-parameters", "Budget spent per stage", "Stage: lr",
                     "Smith's rule", "chosen by validation loss among", "Final schedules",
                     "Training curves"):
        assert expected in text or expected in page
    assert not re.search(r"(src|href)=\"https?://", page)
    (out / "report.html").write_text("stale")
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").read_text() == page  # rebuilt from the journal alone


def test_a_stage_whose_runs_grew_shows_every_length_and_draws_only_the_longest(
        digits_study, tmp_path):
    out, _ = digits_study
    summary = json.loads((out / "summary.json").read_text())
    with Study(out, resume=True) as study:
        records = study.stages()
        trials = {r.name: study.trials(r.name) for r in records}

    ranked = next(r for r in records if r.outcome.search is not None
                  and r.outcome.search.evidence.get("fractions"))
    search = ranked.outcome.search
    fractions = list(search.evidence["fractions"])
    shorter = fractions[0] / 2

    def length(f):
        return "the full length" if f >= 1 else f"{f:.3g} of the final length"

    # the same stage as if its runs had started at half the length and doubled once more
    grown = dataclasses.replace(ranked, outcome=dataclasses.replace(
        ranked.outcome, search=dataclasses.replace(
            search, comparisons=[search.comparisons[0], *search.comparisons],
            evidence={**search.evidence, "fractions": [shorter, *fractions]})))
    pages = []
    for name, stage in (("as-run", ranked), ("grown", grown)):
        with Study(tmp_path / name) as copy:
            for record in records:
                copy.record_stage(stage if record.name == ranked.name else record)
                for result in trials[record.name]:
                    copy.record_trial(record.name, result)
            pages.append(build_report(copy, summary))
    pictures = []
    for page in pages:
        parser = Images()
        parser.feed(page)
        pictures.append(len(parser.sources))
    for f in (shorter, *fractions):  # every length keeps its table
        assert f"Runs of {length(f)}" in pages[1]
    assert pictures[1] == pictures[0]  # the shorter runs' curves are not drawn
    longest = f"validation loss of each run: {ranked.name}, {length(fractions[-1])}"
    shortest = f"validation loss of each run: {ranked.name}, {length(shorter)}"
    assert longest in pages[1] and shortest not in pages[1]


def test_train_py_reproduces_the_final_training_from_any_folder(digits_study, tmp_path):
    out, result = digits_study
    run = subprocess.run([sys.executable, str(out / "train.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    final = result.summary["final"]
    loss = float(re.search(r"validation loss ([\d.e-]+) ", run.stdout).group(1))
    accuracy = float(re.search(r"accuracy ([\d.]+)%", run.stdout).group(1)) / 100
    assert loss == pytest.approx(final["val_loss"], rel=1e-5)  # printed to 6 figures
    assert accuracy == pytest.approx(final["val_metric"], abs=5e-5)
    reproduced = torch.load(tmp_path / "model_reproduced.pt", weights_only=True)
    kept = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(reproduced[k], kept[k]) for k in kept)  # the very same weights


def test_a_killed_tune_resumes_with_the_same_decisions_and_no_rerun(tmp_path, digits_study):
    _, reference = digits_study
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "disciplined.cli", "tune", "digits",
                             "--out", str(out), "--budget-epochs", "4", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done_before = 0
    try:
        while time.time() < deadline:
            time.sleep(0.05)
            if (out / "study.db").exists():
                with sqlite3.connect(out / "study.db") as db:
                    try:
                        done_before = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
                    except sqlite3.OperationalError:
                        continue
                if done_before >= 3:
                    break
        assert done_before >= 3, "the subprocess never got three trials in"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(out / "study.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finished_keys = {r[0] for r in db.execute("SELECT key FROM trials")}
        stages = {r[0] for r in db.execute("SELECT name FROM stages")}
    assert "final" not in stages  # it was killed mid-study
    resumed = tune("digits", out=out, resume=True, **TINY)
    assert resumed.reused_trials >= len(finished_keys) >= 3
    assert resumed.summary["hyperparameters"] == reference.summary["hyperparameters"]
    with sqlite3.connect(out / "study.db") as db:
        keys = [r[0] for r in db.execute("SELECT key FROM trials")]
    assert len(keys) == len(set(keys))  # no trial ran twice


def test_two_processes_on_one_directory_get_a_clear_error(tmp_path):
    # flock belongs to the open file, so a second open in this process stands for a second
    # process exactly as another process would
    with Study(tmp_path), pytest.raises(StudyBusyError, match="in use by another"):
        Study(tmp_path)


def test_an_existing_study_needs_resume(digits_study):
    out, _ = digits_study
    with pytest.raises(DisciplinedError, match="--resume"):
        tune("digits", out=out, **TINY)


REGRESSION = """
import torch

def build_model():
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

def build_datasets():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    y = torch.sin(x @ w) + 0.05 * torch.randn(1200, 1, generator=g)
    ds = torch.utils.data.TensorDataset
    return ds(x[:1000], y[:1000]), ds(x[1000:], y[1000:])

loss_fn = torch.nn.MSELoss()
metric = None
batch_size = 50
"""


def test_a_regression_task_file_without_a_metric_runs_through_tune(tmp_path):
    task = tmp_path / "regression.py"
    task.write_text(REGRESSION)
    result = runner.invoke(app, ["tune", str(task), "--out", str(tmp_path / "out"),
                                 "--budget-epochs", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["final"]["val_metric"] is None and s["final"]["val_loss"] < 0.5
    assert "final validation loss" in result.output
    # the optimizer the task file chose is named, so that a misread file shows
    assert "optimizer     sgd (the task's)" in result.output
    assert "<td>optimizer</td><td>sgd (the task&#x27;s)</td>" in \
        (tmp_path / "out" / "report.html").read_text()


def test_a_classification_task_file_runs_through_tune(tmp_path, digits_task_file):
    result = tune(str(digits_task_file), out=tmp_path / "out", budget_epochs=4, seed=3)
    task = digits_task_file
    assert result.summary["task"] == str(task)
    assert result.summary["final"]["val_metric"] > 0.8
    assert result.summary["seed"] == 3
    assert '"seed": 3' in (tmp_path / "out" / "train.py").read_text()


def test_an_adamw_task_starts_from_its_own_weight_decay(tmp_path, digits_task_file):
    # decoupled decay is multiplied by the LR: SGD's 1e-3 would be next to nothing there
    task = tmp_path / "adamw_digits.py"
    task.write_text(digits_task_file.read_text() + 'optimizer = "adamw"\n')
    result = tune(str(task), out=tmp_path / "out", budget_epochs=2,
                  stages=["range_test", "final"])
    assert result.summary["hyperparameters"]["weight_decay"] == 0.1
    with Study(tmp_path / "out", resume=True) as study:
        final = study.trials("final")
        # a journal without the key may come from a version that started elsewhere: it
        # is refused, with advice no option could follow replaced by what can be done
        config = study.meta("config")
        assert config["start_weight_decay"] == 0.1
        study.set_meta("config", {k: v for k, v in config.items() if k != "start_weight_decay"})
    assert [t.spec.weight_decay for t in final] == [0.1]
    with pytest.raises(DisciplinedError, match=r"start_weight_decay none there, 0\.1 here\); "
                                               r"its start weight decay was set by the version"):
        tune(str(task), out=tmp_path / "out", budget_epochs=2, stages=["range_test", "final"],
             resume=True)


def test_find_lr_and_train_start_each_optimizer_from_its_own_weight_decay_too(tmp_path,
                                                                          digits_task_file):
    task = tmp_path / "adamw_digits.py"
    task.write_text(digits_task_file.read_text() + 'optimizer = "adamw"\n')
    loaded = load_task(str(task)).loaded()

    def losses(**kwargs):
        return task_range_test(loaded, num_steps=40, **kwargs).runs[0].loss

    assert losses() == losses(weight_decay=0.1) != losses(weight_decay=1e-3)
    job = jobs.train(str(task), max_lr=0.01, out=tmp_path / "train", epochs=0.2)
    assert job.result.spec.weight_decay == 0.1
    job = jobs.train(str(digits_task_file), max_lr=0.01, out=tmp_path / "sgd", epochs=0.2)
    assert job.result.spec.weight_decay == 1e-3  # SGD's own start
    search = jobs.search_momentum(str(task), out=tmp_path / "search", epochs=0.1, max_lr=0.01)
    assert {r.spec.weight_decay for r in search.result.comparisons[0].results} == {0.1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tune", "digits", "--budget-epochs", "-1"], "budget_epochs must be > 0"),
        (["tune", "digits", "--budget-minutes", "0"], "budget_minutes must be > 0"),
        (["tune", "digits", "--stages", "range_test,magic"], "unknown stage 'magic'"),
        (["tune", "missing_task.py"], "unknown task"),
        (["report", "/nonexistent/dir"], "holds no study"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_code_2(tmp_path, args, message):
    result = runner.invoke(app, [*args, "--out", str(tmp_path)] if args[0] == "tune" else args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --- the recipe's rules, one at a time --------------------------------------------------------

def test_lr_candidates_are_half_a_decade_apart_around_the_anchor():
    values = lr_candidates(0.1)
    assert len(values) == 9 and values == sorted(values)
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert all(r == pytest.approx(10**0.5, rel=0.01) for r in ratios)
    assert max(values) == pytest.approx(0.316, rel=0.01)  # half a decade above
    assert min(values) == pytest.approx(3.16e-5, rel=0.01)  # 3.5 decades below


def test_a_small_budget_runs_the_candidates_nearest_the_prior():
    assert nearest([1e-4, 1e-3, 1e-2, 1e-1, 1.0], 0.02, 3) == [1e-3, 1e-2, 1e-1]
    assert nearest([0.0, 1e-5, 1e-4, 1e-3], 5e-4, 2) == [1e-4, 1e-3]
    assert nearest([0.0, 1e-5, 1e-4, 1e-3], 0.0, 2) == [0.0, 1e-5]  # 0 is no log-scale point
    assert nearest([(0.9, 0.85), (0.95, 0.85), (0.99, 0.85)], (0.95, 0.85), 1) == \
        [(0.95, 0.85)]


def test_tied_candidates_keep_the_start_value_or_the_nearest_tied_one():
    # how the momentum and weight-decay stages settle a tie (recipe._tied_to_start)
    assert nearest([(0.9, 0.85), (0.97, 0.85), (0.99, 0.85)], (0.95, 0.85), 1) == \
        [(0.97, 0.85)]
    assert nearest([1e-4, 1e-3, 1e-2], 5e-4, 1) == [1e-3]  # half a decade: 1e-3 is nearer
    assert nearest([0.0, 1e-2, 1e-1], 1e-2, 1) == [1e-2]
    # no weight decay lies infinitely far below any positive one on a log scale
    assert nearest([0.0, 1.0], 1e-2, 1) == [1.0]
    assert nearest([0.0, 1e-5], 1e-3, 1) == [1e-5]


def test_the_closed_loop_asks_what_each_diagnosis_calls_for():
    hyper = Hyper(batch_size=64, max_lr=0.1, weight_decay=1e-4)
    spec = TrialSpec("digits", max_lr=0.1, budget=Budget(epochs=1), weight_decay=1e-4)
    first = {verdict: _corrections(hyper, verdict, [spec], "sgd")[0][0]
             for verdict in ("overfitting", "unstable", "diverged", "underfitting", "balanced")}
    assert first["overfitting"].weight_decay == pytest.approx(3.2e-4)  # Smith 4.3: more WD
    assert first["unstable"].max_lr == first["diverged"].max_lr == pytest.approx(0.0316)
    assert first["underfitting"].max_lr == pytest.approx(0.316)
    # what was already trained is not asked for again
    tried = [spec, spec.with_(max_lr=0.0316)]
    assert all(d.max_lr != 0.0316 for d, _ in _corrections(hyper, "balanced", tried, "sgd"))
    # nor what rounds to it: 0.0316 x 10^0.5 is 0.0999, the 0.1 a check already trained
    low = Hyper(batch_size=64, max_lr=0.0316, weight_decay=1e-4)
    checked = [spec.with_(max_lr=0.0316), spec.with_(max_lr=0.1)]
    # the lighter weight decay is left, then the other direction (a diagnosis can be
    # wrong), but never more weight decay for a run that underfits
    assert [d for d, _ in _corrections(low, "underfitting", checked, "sgd")] == \
        [Decision(weight_decay=3.2e-05), Decision(max_lr=0.00999)]
    assert all(d.max_lr is None or d.max_lr < 0.1 for d, _ in
               _corrections(hyper, "unstable", [spec], "sgd"))  # never a higher LR
    assert all(d.weight_decay is None or d.weight_decay > 1e-4 for d, _ in
               _corrections(hyper, "overfitting", [spec], "sgd"))  # nor less weight decay
    # a final no better than a constant prediction: an LR too high holds it there as surely
    # as one too low, so both, the higher first
    assert [d.max_lr for d, _ in _corrections(hyper, recipe.NO_BETTER, [spec], "sgd")][:2] == \
        [pytest.approx(0.316), pytest.approx(0.0316)]
    # no weight decay yet: the optimizer's smallest non-zero value, not 0 x 3
    assert _corrections(Hyper(batch_size=8, max_lr=1e-3, weight_decay=0.0), "overfitting",
                        [], "adamw")[0][0].weight_decay == 1e-3


def test_finer_corrections_step_a_quarter_and_an_eighth_of_a_decade_and_say_so():
    hyper = Hyper(batch_size=64, max_lr=0.1, weight_decay=1e-4)
    spec = TrialSpec("digits", max_lr=0.1, budget=Budget(epochs=1), weight_decay=1e-4)
    quarter = _corrections(hyper, "balanced", [spec], "sgd", 0.25)
    assert [d for d, _ in quarter] == [
        Decision(max_lr=0.0562), Decision(max_lr=0.178), Decision(weight_decay=1.8e-4),
        Decision(weight_decay=5.6e-05)]
    assert [w for _, w in quarter][:2] == ["a quarter-decade lower LR, at full length",
                                           "a quarter-decade higher LR, at full length"]
    assert quarter[2][1] == "more weight decay, at full length (a quarter-decade away)"
    eighth = _corrections(hyper, "overfitting", [spec], "sgd", 0.125)
    assert [d for d, _ in eighth] == [Decision(weight_decay=1.3e-4), Decision(max_lr=0.075),
                                      Decision(max_lr=0.133)]
    assert eighth[0][1] == "it overfits: more weight decay (an eighth-of-a-decade away)"
    # half a decade says what it always said
    assert _corrections(hyper, "overfitting", [spec], "sgd")[0][1] == \
        "it overfits: more weight decay"


def test_a_generous_budget_refines_nearer_its_choice_before_it_ends(tmp_path, monkeypatch):
    # 30 trainings' time and no stage but the final's between: refine runs out of
    # half-decade corrections and goes on a quarter and an eighth of a decade away, then
    # trains the runs tied with its choice again with other seeds
    monkeypatch.setattr(recipe, "TUNE_FINALS", 30.0)
    result = tune("digits", out=tmp_path / "out", stages=["range_test", "final", "refine"],
                  budget_epochs=1)
    reason = {s["name"]: s for s in result.summary["stages"]}["refine"]["reason"]
    tried, _, settled = reason.partition(". Every correction the diagnosis allows, down to "
                                         "an eighth-of-a-decade step from the choice, was tried")
    assert settled, reason
    assert "a half-decade lower LR" in tried and "a quarter-decade" in tried
    assert re.search(r"an eighth-of-a-decade (lower|higher) LR|an eighth-of-a-decade away",
                     tried)  # a correction an eighth of a decade away was trained
    with Study(tmp_path / "out", resume=True) as study:
        runs = [*study.trials("final")[:1], *study.trials("refine")]
    corrections = [r for r in runs if r.spec.seed == 0]
    # no correction trained twice
    assert len({(r.spec.max_lr, r.spec.weight_decay) for r in corrections}) == len(corrections)
    # then the runs tied with the choice got seeds 1, 2, ... in whole rounds
    again = [r for r in runs if r.spec.seed != 0]
    tied = sorted({r.label.rsplit(", seed", 1)[0] for r in again})
    assert 2 <= len(tied) <= recipe.SETTLE_MOST
    rounds = len(again) // len(tied)
    assert rounds >= 1 and len(again) == rounds * len(tied)
    assert sorted(r.spec.seed for r in again) == sorted(list(range(1, rounds + 1)) * len(tied))
    assert f"again with {rounds} more seed" in settled and "mean accuracy" in settled
    # and the values delivered are those of the best mean (each at its seed 0 and the rest)
    means = {label: statistics.fmean(r.val_metric for r in runs
                                     if r.label.rsplit(", seed", 1)[0] == label)
             for label in tied}
    chosen = result.summary["hyperparameters"]
    delivered = next(label for label in tied if any(
        r.label == label and r.spec.max_lr == chosen["max_lr"]
        and r.spec.weight_decay == chosen["weight_decay"] for r in runs))
    assert means[delivered] == max(means.values())
    assert result.summary["final"]["val_metric"] == next(
        r for r in runs if r.label == delivered).model_val_metric


def test_a_run_as_many_steps_long_as_the_final_is_the_final(tmp_path, monkeypatch):
    # the budget rounds a last rung down to 99.95% of the length: as many steps as the final
    # (ceil), so it runs as the full length, and the final keeps it instead of repeating it
    monkeypatch.setattr(recipe, "plan_rungs", lambda n, *a, **k: RungPlan(
        (Fraction(9995, 10000),), (n,), 0.0))
    result = tune("digits", out=tmp_path / "out", budget_epochs=2,
                  stages=["range_test", "weight_decay", "final"])
    with Study(tmp_path / "out", resume=True) as study:
        runs = study.trials("weight_decay")
    assert runs and all(r.spec.budget.epochs == 2 and r.spec.eval_samples is None
                        and r.spec.label.endswith("@ full") for r in runs)
    final = next(s for s in result.summary["stages"] if s["name"] == "final")
    assert "kept, not repeated" in final["reason"], final["reason"]


def test_a_sweep_that_cannot_tell_escalates_and_short_runs_decide(tmp_path, nothing_task_file):
    task = nothing_task_file
    result = tune(str(task), out=tmp_path / "out", budget_epochs=2)
    stages = {s["name"]: s for s in result.summary["stages"]}
    reason = stages["range_test"]["reason"]
    assert "100-step sweep could not tell" in reason and "400-step one could not" in reason
    assert "cannot tell" in reason
    assert stages["lr"]["trials"] >= 2  # the LR comes from runs, not from the sweep
    assert "chosen by validation loss among" in stages["lr"]["reason"]
    assert "every run underfits" in stages["lr"]["reason"]  # and it says what it saw
    # the 50-step final is shorter than a short run may be, so every run was full-length:
    # the weight-decay stage's winner is the final training, kept and not trained again
    assert "kept, not repeated" in stages["final"]["reason"]
    assert stages["final"]["trials"] == 1 and (tmp_path / "out" / "model.pt").exists()
    # the report gives the run's own time, not the stage's near-zero one
    final = result.summary["final"]
    assert final["train_seconds"] > final["wall_seconds"]
    assert f"trained in {final['train_seconds']:.1f} s by an earlier stage's run" in \
        (tmp_path / "out" / "report.html").read_text()
    assert stages["refine"]["trials"] >= 1  # the budget left went to the closed loop
    # a 2-epoch final is shorter than the 60 steps a short run may take: no run is longer
    # than the final training (a short run longer than it misjudges what the final rewards)
    with Study(tmp_path / "out", resume=True) as study:
        final_steps = study.trials("final")[0].steps
        assert final_steps < 60
        assert all(t.steps <= final_steps for t in study.trials() if t.state == "complete")


def test_tied_momenta_and_weight_decays_keep_where_their_stages_started(tmp_path,
                                                                       nothing_task_file):
    # nothing to learn: every candidate ties, so each stage's tie rule decides
    result = tune(str(nothing_task_file), out=tmp_path / "out", budget_epochs=10,
                  stages=["range_test", "momentum", "weight_decay"])
    stages = {s["name"]: s for s in result.summary["stages"]}
    assert "still tied within noise" in stages["weight_decay"]["reason"]
    assert "nearest weight decay 0.001, where the stage started" in \
        stages["weight_decay"]["reason"]
    # the start, 1e-3, not the largest of the tied window (1e-2) nor the smallest (1e-4)
    assert result.summary["hyperparameters"]["weight_decay"] == 1e-3
    assert "nearest momentum 0.95->0.85" in stages["momentum"]["reason"]
    assert result.summary["hyperparameters"]["momentum"] == [0.95, 0.85]


class Untellable:
    """Trains each trial for real, then reports every one as the same loss within a wide
    noise: no run length can tell any candidate apart."""

    def __init__(self):
        self.local = LocalExecutor()

    def map(self, specs, *, on_result=None):
        results = [dataclasses.replace(r, val_loss=1.0, diagnosis=Diagnosis(
            "underfitting", "", {"noise": 1.0})) for r in self.local.map(specs)]
        for r in results:
            if on_result is not None:
                on_result(r)
        return results


def test_lrs_no_run_length_tells_apart_keep_the_range_tests_reading(tmp_path, digits_task_file):
    # the runs say nothing about the order, so the range test's reading stands (the rule
    # for a tie among leaders that runs did tell from the rest, the lowest LR, would take
    # the candidate 3.5 decades below the anchor)
    result = tune(str(digits_task_file), out=tmp_path / "out", budget_epochs=10,
                  stages=["range_test", "lr"], executor=Untellable())
    stages = {s["name"]: s for s in result.summary["stages"]}
    provisional = stages["range_test"]["decision"]["max_lr"]
    reason = stages["lr"]["reason"]
    assert "no length told any apart" in reason
    assert f"nearest the range test's max LR {provisional:.3g}" in reason
    assert "of the tied ones (max LR " in reason  # which ones, so the user can see
    with Study(tmp_path / "out", resume=True) as study:
        tried = study.finished_stage("lr").outcome.search.evidence["values"]
    assert len(tried) > 2 and min(tried) < provisional / 10
    assert result.summary["hyperparameters"]["max_lr"] == nearest(tried, provisional, 1)[0]


def test_a_tie_among_lrs_grows_into_the_later_stages_time(tmp_path, digits_task_file):
    # the LR comes first: a tie its own share could not break runs again, longer, in the
    # time momentum and weight decay would have had; they keep their start values
    stages = ["range_test", "lr", "momentum", "weight_decay", "final"]
    result = tune(str(digits_task_file), out=tmp_path / "out", budget_epochs=10,
                  stages=stages, executor=Untellable())
    alone = tune(str(digits_task_file), out=tmp_path / "alone", budget_epochs=10,
                 stages=["range_test", "lr"], executor=Untellable())
    by_name = {s["name"]: s for s in result.summary["stages"]}
    reason = by_name["lr"]["reason"]
    assert "the longest the LR stage's share allowed" in reason
    assert "in the time of the momentum and weight-decay stages (the LR comes first)" in reason
    with Study(tmp_path / "out", resume=True) as study:
        search = study.finished_stage("lr").outcome.search
        lengths = search.evidence["fractions"]
        assert search.evidence["grown"] == ["momentum", "weight_decay"]
        assert lengths[-1] >= min(1.0, 2 * lengths[-2])
        assert study.trials("momentum") == [] and study.trials("weight_decay") == []
        # the final training still had its time: the tie took only the searches' parts
        assert len(study.trials("final")) == 1
        assert study.meta("plan")["budget_units"] >= \
            sum(t.steps for t in study.trials() if t.state == "complete") \
            / study.trials("final")[0].steps - 1e-9
    for stage in ("momentum", "weight_decay"):
        assert "the LR stage's runs grew into this stage's time" in \
            by_name[stage]["reason"]
    # no length told any apart: the range test's reading decides, as it does without growth
    provisional = by_name["range_test"]["decision"]["max_lr"]
    assert "no length told any apart" in reason
    assert f"nearest the range test's max LR {provisional:.3g}" in reason
    assert result.summary["hyperparameters"]["max_lr"] == \
        alone.summary["hyperparameters"]["max_lr"]


def test_lr_runs_that_learned_nothing_train_the_full_length_instead(tmp_path,
                                                                   nothing_task_file):
    # a plateau (here inputs that say nothing of the labels): no LR's short run learns, so
    # doubling their length would only tie them again; candidates nearest SGD's usual max
    # LR (the range test's reading is the noise of its sweep there) train the full length
    # in the later stages' time and the final's, and the final training keeps the best of
    # them instead of training again
    stages = ["range_test", "lr", "momentum", "weight_decay", "final"]
    result = tune(str(nothing_task_file), out=tmp_path / "out", budget_epochs=20,
                  stages=stages)
    by_name = {s["name"]: s for s in result.summary["stages"]}
    reason = by_name["lr"]["reason"]
    assert "had learned anything yet" in reason
    assert f"candidates nearest {USUAL_MAX_LR['sgd']:.3g}, where SGD's max LR usually " \
        "lies" in reason
    # underfitting there says nothing of the model's capacity: no run could leave the plateau
    assert "the LR is not what holds this model back" not in reason
    assert "in the time of the momentum and weight-decay stages and of the final training" \
        in reason
    with Study(tmp_path / "out", resume=True) as study:
        search = study.finished_stage("lr").outcome.search
        *short, full = search.comparisons
        assert search.evidence["fractions"][-1] == 1
        assert search.evidence["grown"] == ["momentum", "weight_decay"]
        assert not any(recipe.learned(r) for r in short[-1].results)
        assert len(full.results) >= 2
        steady = sorted(r.spec.max_lr for r in short[-1].results
                        if recipe.learned(r) is not None)
        assert sorted(r.spec.max_lr for r in full.results) == \
            nearest(steady, USUAL_MAX_LR["sgd"], len(full.results))
        best = min(full.results, key=lambda r: r.val_loss)
        final = study.trials("final")[0]
        assert final.spec.max_lr == best.spec.max_lr == result.summary["hyperparameters"][
            "max_lr"]
        assert study.trials("momentum") == [] and study.trials("weight_decay") == []
        plan = study.meta("plan")
        trained = sum(t.steps for t in study.trials("lr") if t.state == "complete")
        assert trained <= plan["budget_units"] * plan["final_steps"]  # the final: no more
    assert "kept, not repeated" in by_name["final"]["reason"]


class Curves:
    """Runs nothing: each max LR's run reports a validation curve `curve(lr)` and ends at its
    last point, read within `noise`."""

    def __init__(self, curve, noise):
        self.curve, self.noise = curve, noise

    def map(self, specs, on_result=None):
        out = []
        for s in specs:
            val = self.curve(s.max_lr)
            out.append(TrialResult(s, "complete", None, History(
                eval_step=list(range(len(val))), val_loss=val), Diagnosis(
                "underfitting", "", {"noise": self.noise}), val[-1], None, 10, 1.0))
        return out


def _short_lr_tie(curve, noise, told_apart=True):
    lrs = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    def spec_for(lr, fraction):
        return TrialSpec("digits", max_lr=lr, budget=Budget(epochs=fraction), label=f"{lr}")
    found = successive_halving(lrs, spec_for, RungPlan((Fraction(1, 8),), (5,)),
                               prefer=lowest_tied_lr, executor=Curves(curve, noise),
                               prefer_untold=lambda tied, _: nearest(tied, 1e-5, 1)[0])
    assert found.tied and found.told_apart == told_apart
    return recipe._plateau_settled(found, lambda tied, _: nearest(tied, 1e-3, 1)[0])


def test_a_tie_where_no_run_learned_is_settled_as_one_no_length_told_apart():
    # a plateau (FINDINGS' transformer): every LR sits near the plateau's loss, the lowest
    # ones a little above it, not there yet; those were told apart, the rest tied. The
    # lowest tied LR could not leave the plateau in a final training either: the tie says
    # nothing of the order, and the rule for untold ties (here the one nearest 1e-3) decides
    def plateau(lr):
        return [0.74, 0.72, 0.72 if lr < 1e-4 else 0.693]
    found = _short_lr_tie(plateau, noise=0.002)
    assert found.leaders == (1e-4, 1e-3, 1e-2)
    assert found.winner == 1e-3 and not found.told_apart
    assert "no run had learned anything yet" in found.length_note
    assert "told apart only LRs too low" in found.length_note


def test_an_untold_tie_where_no_run_learned_is_settled_by_the_plateaus_rule():
    # no length told any apart, and nothing learned: the rule the halving took (the one
    # nearest 1e-5, standing in for the range test's reading) gives way to the plateau's
    def flat(lr):
        return [0.70, 0.695, 0.693]
    found = _short_lr_tie(flat, noise=0.002, told_apart=False)
    assert found.winner == 1e-3 and not found.told_apart
    assert found.length_note.count("no length told any apart") == 1
    assert "no run had learned anything yet" in found.length_note


def _read_run(val, baseline):
    """A run of this validation curve, read by diagnose against `baseline` (a constant
    prediction's loss, None where unknown)."""
    h = History(eval_step=list(range(10, 10 * len(val) + 1, 10)), val_loss=list(val),
                baseline=baseline)
    spec = TrialSpec("digits", max_lr=0.1, budget=Budget(epochs=1), label=f"{val[0]:.3f}")
    return TrialResult(spec, "complete", None, h, diagnose(h), float(val[-1]), None, 10, 1.0)


def test_a_run_learned_where_it_got_clearly_below_the_constant_prediction():
    noise = [0.002 * ((-1) ** i) for i in range(12)]
    # from a large initial loss down to what predicting three balanced classes' frequencies
    # scores (ln 3, FINDINGS' plateau), and flat there: it fell 30%, yet learned nothing
    at_priors = [v + e for v, e in zip([1.6, 1.4, 1.2] + [1.0986] * 9, noise, strict=True)]
    # already low at its first evaluation, and flat: it fell under 10%, yet learned much
    early = [0.3 + e for e in noise]
    log3 = 1.0986
    assert recipe.learned(_read_run(at_priors, None)) is True  # the stand-in: it fell
    assert recipe.learned(_read_run(at_priors, log3)) is False
    assert recipe.learned(_read_run(early, None)) is False
    assert recipe.learned(_read_run(early, log3)) is True
    # three evaluations are too few for the diagnosis to read: the constant, 1% below, decides
    assert recipe.learned(_read_run([1.6, 1.2, 1.1], log3)) is False
    assert recipe.learned(_read_run([0.31, 0.3, 0.3], log3)) is True
    assert recipe.learned_nothing(Comparison.of([_read_run(at_priors, log3)] * 2))
    assert not recipe.learned_nothing(Comparison.of([_read_run(at_priors, log3),
                                                     _read_run(early, log3)]))


def test_a_tie_among_runs_that_learned_keeps_the_lowest_lr():
    def learning(lr):
        return [1.0, 0.6, 0.6 if lr < 1e-4 else 0.3]
    found = _short_lr_tie(learning, noise=0.002)
    assert found.winner == 1e-4 and found.told_apart
    assert "learned anything" not in found.length_note


def test_lr_runs_that_learn_go_on_growing(digits_study):
    # where the runs learn (digits), the halving is unchanged: no full-length jump
    out, result = digits_study
    reason = {s["name"]: s for s in result.summary["stages"]}["lr"]["reason"]
    assert "had learned anything yet" not in reason
    with Study(out, resume=True) as study:
        first = study.finished_stage("lr").outcome.search.comparisons[0]
    assert not recipe.learned_nothing(first)


def test_fewer_lr_candidates_keep_one_above_the_reading_and_the_rest_below():
    # the dev half's best LRs lay up to 0.28 decades above the range test's reading and up
    # to 1.34 below it: a trimmed window reaches further down than up
    values = sorted(lr_candidates(0.138))
    reading = 0.0438  # Smith's rule on that anchor, rounded apart from its candidate 0.0436
    assert from_above(values, reading, 2) == [0.0436, 0.138]
    five = from_above(values, reading, 5)
    assert five == values[3:8] and five[-1] == 0.138 and five[0] == 0.00138
    assert from_above(values, reading, len(values)) == values
    # fewer below the reading than the window wants: the lowest ones
    assert from_above(values, values[1], 4) == values[:4]


def test_only_a_tie_wider_than_a_cycles_own_range_grows():
    # a 1cycle sweeps max_lr / 10 to max_lr: ties within a decade (3 significant figures,
    # half a decade apart) stay with the LR stage's share, wider ones grow
    assert not wider_than_a_cycle([0.156, 0.492])
    assert not wider_than_a_cycle([0.0173, 0.0546, 0.173])
    assert not wider_than_a_cycle([0.0242, 0.0765, 0.242])
    assert wider_than_a_cycle([0.00792, 0.0251, 0.0792, 0.251])
    assert wider_than_a_cycle([1.29e-05, 0.00408])
    assert not wider_than_a_cycle([0.01])


def test_a_stage_that_cannot_be_read_leaves_its_share_to_the_others():
    every = ["lr", "momentum", "weight_decay"]
    assert shares(every, 6.0, lambda st, part: True) == \
        {"lr": 3.0, "momentum": 1.0, "weight_decay": 2.0}  # by STAGE_WEIGHTS
    # weight decay needs 2.5 trainings to run long enough: the LR and momentum share it all
    assert shares(every, 6.0, lambda st, part: st != "weight_decay" or part >= 2.5) == \
        {"lr": 4.5, "momentum": 1.5, "weight_decay": 0.0}
    # neither can be read: the LR stage takes it all
    assert shares(every, 6.0, lambda st, part: st == "lr" or part >= 2.5) == \
        {"lr": 6.0, "momentum": 0.0, "weight_decay": 0.0}
    # the stage asking always gets its part (it says itself why it keeps its value)
    assert shares(["weight_decay"], 1.0, lambda st, part: False) == {"weight_decay": 1.0}


def test_short_runs_lr_is_corrected_by_the_measured_horizon_bias():
    assert horizon_bias(1.0) == 0 and horizon_bias(2.0) == 0  # full length: no correction
    assert horizon_bias(1 / 8) == pytest.approx(0.75)
    assert horizon_corrected(0.1, 1 / 4) == pytest.approx(0.0316)
    assert horizon_corrected(0.1, 1.0) == 0.1
    shorter = [horizon_corrected(1.0, f) for f in (1 / 8, 1 / 4, 1 / 2, 1)]
    assert shorter == sorted(shorter) and len(set(shorter)) == 4  # shorter: corrected more
    # not extrapolated below the shortest length measured (1/8)
    assert horizon_bias(1 / 16) == horizon_bias(1 / 100) == horizon_bias(1 / 8)
    # a classifier, judged by its accuracy, at most half a decade
    assert horizon_bias(1 / 2, by_accuracy=True) == pytest.approx(0.25)
    assert horizon_bias(1 / 4, by_accuracy=True) == horizon_bias(1 / 16, by_accuracy=True) \
        == pytest.approx(0.5)
    assert horizon_corrected(0.00313, 1 / 16, by_accuracy=True) == pytest.approx(0.00099)


def test_a_horizon_corrected_lr_is_checked_at_full_length_first(tmp_path):
    # on MNIST-1D, runs of 17% of a 10-epoch final pick max LR 0.234 clearly, and the
    # horizon correction lowers it 0.65 decades; the budget keeps one full-length run for
    # the uncorrected winner, and the closed loop trains it before anything else
    result = tune("mnist1d", out=tmp_path / "out", budget_epochs=10)
    stages = {s["name"]: s for s in result.summary["stages"]}
    assert "corrected from" in stages["lr"]["reason"]
    assert "kept in the budget to check the correction" in stages["lr"]["reason"]
    with Study(tmp_path / "out", resume=True) as study:
        winner = lr_to_check(study)
        chosen = study.finished_stage("lr").outcome.decision.max_lr
        first = study.trials("refine")[0]
        final = next(r for r in study.trials("final") if r.label == "final")
    assert winner is not None and winner > chosen
    assert final.spec.max_lr == chosen
    assert first.spec.max_lr == winner and first.spec.budget == final.spec.budget
    assert stages["refine"]["reason"].startswith(CHECK_WHY)
    # here it wins by far (its loss about a third of the corrected LR's): it becomes the model
    assert first.val_loss < final.val_loss / 2 and first.val_metric > final.val_metric
    assert result.hyperparameters["max_lr"] == winner
    assert result.summary["final"]["val_loss"] == pytest.approx(first.val_loss)


def test_refine_judges_a_classifier_by_its_accuracy_too(digits_study):
    # two real runs of the digits study, one with a clearly lower validation loss; given the
    # lower accuracy, it is not kept (a loss can prefer a lower LR than accuracy does)
    out, _ = digits_study
    with Study(out, resume=True) as study:
        runs = sorted((r for r in study.trials() if r.state == "complete" and r.diagnosis
                       and r.diagnosis.verdict != "diverged"), key=lambda r: r.val_loss)
    good, poor = runs[0], runs[-1]
    assert _clearly_better(good, poor, "accuracy") == (True, "kept")
    fooled = dataclasses.replace(good, val_metric=poor.val_metric - 0.01)
    assert _clearly_better(fooled, poor, None) == (True, "kept")
    assert _clearly_better(fooled, poor, "accuracy") == \
        (False, "lower, but its accuracy is lower too: not kept")
    # the other way round, both steady: a higher loss is not kept, and the line says what a
    # higher accuracy beside it does not change
    steady = dataclasses.replace(good, diagnosis=dataclasses.replace(good.diagnosis,
                                                                     verdict="balanced"))
    assert _clearly_better(poor, steady, None) == \
        (False, "its validation loss is not lower: not kept")
    lucky = dataclasses.replace(poor, val_metric=good.val_metric + 0.01,
                                diagnosis=steady.diagnosis)
    assert _clearly_better(lucky, steady, "accuracy") == \
        (False, "its validation loss is not lower, though its accuracy is higher: not kept")
    # the horizon check, a choice between equals, takes the better score, by accuracy first
    assert _scored_better(poor, fooled, "accuracy") and not _scored_better(poor, fooled, None)


@pytest.mark.parametrize("verdict", UNSTEADY)
@pytest.mark.parametrize("metric", ["accuracy", None])
def test_a_steady_correction_is_kept_against_an_unstable_run_whatever_its_noise(
        digits_study, verdict, metric):
    # an unstable run's noise is its instability, the symptom a lower LR treats: against it,
    # a steady run that scores better is kept even where the noise test calls them tied
    out, _ = digits_study
    with Study(out, resume=True) as study:
        runs = sorted((r for r in study.trials() if r.state == "complete" and r.diagnosis
                       and r.diagnosis.verdict not in UNSTEADY), key=lambda r: r.val_loss)
    good, poor = runs[0], runs[-1]
    assert good.val_metric > poor.val_metric
    noise = 10 * (poor.val_loss - good.val_loss)
    shaky = dataclasses.replace(poor, diagnosis=dataclasses.replace(
        poor.diagnosis, verdict=verdict, evidence={**poor.diagnosis.evidence, "noise": noise}))
    calm = dataclasses.replace(shaky, diagnosis=dataclasses.replace(shaky.diagnosis,
                                                                    verdict="balanced"))
    assert _clearly_better(good, calm, metric) == \
        (False, "lower, but within both runs' noise: not kept")
    assert _clearly_better(good, shaky, metric) == \
        (True, f"kept: steady, where the run before it was {verdict}")
    # not when the correction is unsteady too, nor when it scores no better
    unsteady_too = dataclasses.replace(good, diagnosis=shaky.diagnosis)
    assert not _clearly_better(unsteady_too, shaky, metric)[0]
    no_better = dataclasses.replace(good, val_metric=poor.val_metric, val_loss=poor.val_loss)
    assert not _clearly_better(no_better, shaky, metric)[0]


def test_without_a_refine_stage_no_check_is_promised_nor_kept_in_reserve(tmp_path):
    # the same MNIST-1D study as above, less the refine stage: the LR stage still corrects,
    # but nothing would check it, so the momentum stage gets the time instead of skipping
    stages = ["range_test", "lr", "momentum", "weight_decay", "final"]
    result = tune("mnist1d", out=tmp_path / "out", budget_epochs=10, stages=stages)
    reasons = {s["name"]: s["reason"] for s in result.summary["stages"]}
    assert "corrected from" in reasons["lr"] and "check the correction" not in reasons["lr"]
    assert not reasons["momentum"].startswith("kept")
    with Study(tmp_path / "out", resume=True) as study:
        assert lr_to_check(study) is None
        lr = study.finished_stage("lr").outcome
        assert lr.search.evidence["uncorrected"] > lr.decision.max_lr


def test_a_budget_used_up_before_the_plan_is_a_clear_error_and_resumes_with_another(
        tmp_path):
    out = str(tmp_path / "out")
    stages = ["--stages", "range_test,final"]
    result = runner.invoke(app, ["tune", "digits", "--out", out, "--budget-minutes", "0.001",
                                 "--quiet", *stages])
    assert result.exit_code == 2
    assert "is used up by loading the task and the range test" in result.output
    assert "give at least" in result.output and "with --resume, the range test" in result.output
    with Study(tmp_path / "out", resume=True) as study:
        swept = study.finished_stage("range_test").outcome.reason
    # the study has no plan yet: --resume takes another budget, and keeps the range test
    again = runner.invoke(app, ["tune", "digits", "--out", out, "--budget-epochs", "3",
                                "--resume", "--quiet", *stages])
    assert again.exit_code == 0, again.output
    with Study(tmp_path / "out", resume=True) as study:
        assert study.finished_stage("range_test").outcome.reason == swept
        assert study.meta("config")["budget_epochs"] == 3
    # once planned, the budget is the study's: another one is refused, as any setting
    other = runner.invoke(app, ["tune", "digits", "--out", out, "--budget-epochs", "5",
                                "--resume", "--quiet", *stages])
    assert other.exit_code == 2 and "holds a study with other settings" in other.output


def test_a_study_resumed_with_other_settings_is_told_which_and_what_to_do(tmp_path):
    out = tmp_path / "out"
    tune("digits", out=out, budget_epochs=3, stages=["range_test"])
    # another task (whose optimizer has another start weight decay): its settings, not the
    # version, are what differ
    with pytest.raises(DisciplinedError, match=r"start_weight_decay 0\.001 there, 0\.1 here; "
                                               r"task digits there, zoo/") as told:
        tune("zoo/tabular_small_adamw", out=out, budget_epochs=3, stages=["range_test"],
             resume=True)
    assert "resume it with the same ones" in str(told.value)
    assert "finish it with that version" not in str(told.value)
    # only the start weight decay differs: another version of disciplined began it
    with Study(out, resume=True) as study:
        study.set_meta("config", {**study.meta("config"), "start_weight_decay": 0.5})
    with pytest.raises(DisciplinedError, match="finish it with that version"):
        tune("digits", out=out, budget_epochs=3, stages=["range_test"], resume=True)


def test_the_reports_reserve_gives_back_what_a_stage_that_ran_nothing_will_not_draw():
    stages = ("range_test", "lr", "momentum", "weight_decay", "final", "refine")
    plan = Plan(final_epochs=1, final_steps=100, budget_seconds=10.0, budget_units=None,
                eval_samples=100, step_seconds=1e-3, sample_seconds=1e-5, setup_seconds=0.1,
                spent_before=1.0, report_seconds=8.0)
    ledger = Ledger()
    # only the settings, the plan and the ledger are read
    ctx = Context(settings=Settings("digits", Path("unused"), stages), task=None, study=None,
                  hyper=None, plan=plan, progress=None, executor=None, ledger=ledger)
    assert ctx.report_reserve() == pytest.approx(8.0)  # a picture each, the final's three
    ledger.drew("range_test", 1)
    ledger.drew("lr", 0)  # no room for short runs: kept its value, draws nothing
    ledger.drew("momentum", 0)
    assert ctx.report_reserve() == pytest.approx(6.0)
    ledger.drew("weight_decay", 1)
    ledger.drew("final", 2)
    ledger.drew("refine", 0)
    assert ctx.report_reserve() == pytest.approx(5.0)
    ledger.drew("refine", 3)  # more than a stage draws: never more than was planned
    assert ctx.report_reserve() == pytest.approx(6.0)
    bare = dataclasses.replace(ctx, plan=dataclasses.replace(plan, pictures=False))
    assert bare.report_reserve() == 0.0  # a report without pictures costs no reserve


def test_pictures_that_would_take_over_a_tenth_of_the_budget_are_left_out(tmp_path,
                                                                           monkeypatch):
    # drawing "takes" 2 s, over 10% of a 12 s budget: the report keeps its tables and
    # reasons, says why it has no pictures, and `disciplined report` draws them after
    monkeypatch.setattr(recipe, "_report_seconds", lambda ctx: 2.0)
    out = tmp_path / "out"
    tune("digits", out=out, budget_minutes=0.2, stages=["range_test", "final"])
    page = (out / "report.html").read_text()
    assert "<img" not in page and "Stage: final" in page
    assert "The pictures were left out to keep the budget" in page
    assert f"disciplined report {out}" in page
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert page.count("<img") == 3 and "left out" not in page  # range test, final's two


@given(strategies.floats(min_value=0.01, max_value=36000.0))
def test_the_minutes_a_refusal_advises_cover_what_is_needed(seconds):
    minutes = minutes_to_give(seconds)
    assert minutes * 60 >= seconds * (1 - 1e-9)  # never advice that is refused again
    assert minutes * 60 < seconds + 6 + 1e-6  # and no more than a tenth of a minute above
    assert minutes == round(minutes, 1)


def test_the_wall_budget_counts_loading_the_task(tmp_path, monkeypatch):
    # loading "takes" 100 s on the clock tune reads (every span measured after it is real):
    # a 90-second budget is then used up before the range test ends
    real_clock, real_load = time.perf_counter, recipe.load_task
    loaded = [0.0]

    def slow_load(*args, **kwargs):
        loaded[0] = 100.0
        return real_load(*args, **kwargs)

    monkeypatch.setattr(recipe.time, "perf_counter", lambda: real_clock() + loaded[0])
    monkeypatch.setattr(recipe, "load_task", slow_load)
    with pytest.raises(DisciplinedError, match=r"used up by loading the task and the range "
                                               r"test \(1\d\d s\)"):
        tune("digits", out=tmp_path / "out", budget_minutes=1.5)


def test_the_wall_budget_counts_from_the_start_it_is_given(tmp_path):
    # the command passes its own start: 100 s of "imports" before tune's call use up a
    # 90-second budget, as they would on the user's clock
    with pytest.raises(DisciplinedError, match=r"used up by loading the task and the range "
                                               r"test \(1\d\d s\)"):
        tune("digits", out=tmp_path / "out", budget_minutes=1.5,
             started=time.perf_counter() - 100)
    with pytest.raises(ValueError, match=r"started must be a time\.perf_counter\(\) reading"):
        tune("digits", out=tmp_path / "later", budget_minutes=1.5,
             started=time.perf_counter() + 100)
    assert not (tmp_path / "later").exists()  # refused before anything was written


def test_the_command_counts_its_budget_from_its_own_start(monkeypatch, capsys):
    seen = {}

    def fake_tune(task, **kwargs):
        seen["started"], seen["called"] = kwargs["started"], time.perf_counter()
        raise DisciplinedError("stopped here")

    monkeypatch.setattr(recipe, "tune", fake_tune)
    monkeypatch.setattr(sys, "argv", ["disciplined", "tune", "digits", "--budget-minutes",
                                      "1", "--quiet"])
    before = time.perf_counter()
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 2 and "stopped here" in capsys.readouterr().err
    assert before <= seen["started"] <= seen["called"]
    # in-process (the app called without `main`, as a test or a notebook does): tune's call
    assert runner.invoke(app, ["tune", "digits", "--quiet"]).exit_code == 2
    assert seen["started"] is None


@pytest.mark.parametrize("verdicts", [
    {1e-3: "balanced", 1e-2: "balanced"},
    {1e-3: "underfitting", 1e-2: "balanced", 1e-1: "balanced"},  # still learning: kept
    {1e-3: "underfitting", 1e-2: "underfitting"},
    {1e-3: None, 1e-2: "unstable"},
])
def test_a_tie_among_lrs_goes_to_the_lowest_whatever_its_runs_verdict(verdicts):
    assert lowest_tied_lr(sorted(verdicts, reverse=True), verdicts) == 1e-3


# The speeds the plan is timed at in the tests below, whatever the machine: a training step,
# a validation sample (free) and a trial's set-up, in seconds.
STEP, SAMPLE, SETUP = 0.1, 0.0, 0.1


class AtPlanSpeeds:
    """Trains each trial for real and reports it as taking `times` what the plan's speeds
    (STEP, SETUP) say it costs. Reported from the plan's speeds, not the clock's, so that
    the budget buys the same runs on a fast machine as on a slow one (read from the clock,
    a faster machine fitted the full length into the plan, and the branch under test never
    ran)."""

    def __init__(self, times: float):
        self.times = times
        self.local = LocalExecutor()

    def map(self, specs, *, on_result=None):
        results = [dataclasses.replace(r, seconds=self.times * (SETUP + r.steps * STEP))
                   for r in self.local.map(specs)]
        for r in results:
            if on_result is not None:
                on_result(r)
        return results


def test_runs_dearer_than_the_plan_timed_are_replanned_after_the_first(tmp_path,
                                                                      monkeypatch):
    # the first LR run shows the runs cost three times what the plan timed (on the zoo at
    # 3x, the LR stage's runs took up to 1.8x, and the tunes ended at up to 1.39x their
    # budget): the rest are re-planned to what the stage's share buys at that cost, before
    # they are committed to (the plan timed at fixed speeds: a final training of digits,
    # 230 steps, is 23 s, and the budget about five of them)
    monkeypatch.setattr(recipe, "_measure", lambda ctx: (STEP, SAMPLE, SETUP))
    result = tune("digits", out=tmp_path / "out", budget_minutes=2.0,
                  stages=["range_test", "lr", "final"], executor=AtPlanSpeeds(3))
    reason = {s["name"]: s for s in result.summary["stages"]}["lr"]["reason"]
    assert "the first run took" in reason and "so the runs were re-planned" in reason
    with Study(tmp_path / "out", resume=True) as study:
        search = study.finished_stage("lr").outcome.search
        pilot, *rest = study.trials("lr")
    first = search.comparisons[0]
    assert len(first.results) >= 2 and pilot.spec.max_lr in search.evidence["values"]
    # the first rung's runs are shorter than the plan's, the first run left out of them
    assert all(r.spec.budget.epochs < pilot.spec.budget.epochs for r in first.results)
    assert [r.label for r in rest] == [r.label for c in search.comparisons for r in c.results]
    assert "left out of the comparison" in reason


def test_time_no_later_stage_will_use_grows_the_leading_runs(tmp_path, digits_task_file,
                                                            monkeypatch):
    # the LR runs cost a fifth of their planned seconds (on the zoo at 3x, up to 0.94 of a
    # final training was left unused): the time left goes to the leading runs, again at
    # least twice as long, not to waste (a final training of 100 epochs, 290 s at the
    # plan's speeds, shortened to fit the budget, leaves the LR runs a fraction of its
    # length; this branch ran the same from budgets of 3 to 7 minutes)
    monkeypatch.setattr(recipe, "_measure", lambda ctx: (STEP, SAMPLE, SETUP))
    long_task = tmp_path / "long_digits.py"
    long_task.write_text(digits_task_file.read_text() + "epochs = 100\n")
    result = tune(str(long_task), out=tmp_path / "out", budget_minutes=5.0,
                  stages=["range_test", "lr", "final"], executor=AtPlanSpeeds(1 / 5))
    reason = {s["name"]: s for s in result.summary["stages"]}["lr"]["reason"]
    assert "final trainings' time left that no later stage would use" in reason
    with Study(tmp_path / "out", resume=True) as study:
        search = study.finished_stage("lr").outcome.search
        trials = study.trials("lr")
    # runs cheaper than planned keep the plan: the first run is one of the first rung's
    assert len(trials) == sum(len(c.results) for c in search.comparisons)
    *_, shorter, longer = search.evidence["fractions"]
    assert longer >= min(1.0, 2 * shorter)
    *_, before, grown = search.comparisons
    ranked = [x for x in before.ranking if x.rank is not None]
    leaders = [x for x in ranked if x.rank == ranked[0].rank]
    tops = leaders if len(leaders) > 1 else ranked[:2]
    grown_lrs = {r.spec.max_lr for r in grown.results}
    assert len(grown_lrs) >= 2
    assert grown_lrs <= {before.result(x.label).spec.max_lr for x in tops}
    # the longer runs decide (before the horizon correction, where one applies)
    chosen = search.evidence.get("uncorrected", search.decision.max_lr)
    assert chosen in grown_lrs


@pytest.mark.parametrize(("spent", "units", "epochs"), [
    (92.5, None, 7.5),  # 7.5 s left at 5 s per planned final: 1.5 of them
    (96.0, None, 4.0),  # the stages before it overran: 0.8 of the planned final is left
    (99.0, None, 1.5),  # never below the shortest 1cycle: 60 of the plan's 200 steps
    (10.0, None, 10.0),  # plenty: the task's own length, no more
    (92.5, 4.0, 5.0),  # a budget in trainings: no clock re-plans it
])
def test_a_final_training_is_replanned_from_the_time_left(spent, units, epochs):
    # the plan shortened the task's 10 epochs to 5, from steps timed at twice their speed
    plan = Plan(final_epochs=5, final_steps=200, budget_seconds=None if units else 100.0,
                budget_units=units, eval_samples=100, step_seconds=0.05, sample_seconds=0.0,
                setup_seconds=0.0, spent_before=spent, pictures=False)
    ledger = Ledger()
    ledger.before = spent
    ledger.observed(5.0, 10.0)  # the runs took half their predicted time
    ctx = Context(settings=Settings("digits", Path("unused"), ("final",)),
                  task=load_task("digits"), study=None, hyper=None, plan=plan,
                  progress=None, executor=None, ledger=ledger, later=("final",))
    assert _final_epochs(ctx) == pytest.approx(epochs)


def test_the_final_training_takes_back_what_a_slow_timing_cut_from_it(tmp_path, monkeypatch,
                                                                      digits_task_file):
    # the runs cost a tenth of what the plan timed: it shortens the final training. Once
    # the LR stage's runs have shown the real speed, the final stage lengthens it again, as
    # far as the time left allows; with no run to show it, the plan's cut stands. (The LR
    # stage's own use of time left is switched off here.) The plan's speeds are fixed and
    # the runs report their cost from them, so that a fast machine plans the same cut as a
    # slow one (timed from the clock, a fast machine fitted all 100 epochs and cut nothing).
    monkeypatch.setattr(recipe, "_measure", lambda ctx: (STEP, SAMPLE, SETUP))
    monkeypatch.setattr(recipe, "_extended", lambda ctx, stage, keys, found, *rest: found)
    long_task = tmp_path / "long_digits.py"
    long_task.write_text(digits_task_file.read_text() + "epochs = 100\n")
    for stages, lengthened in ((["range_test", "lr", "final"], True),
                               (["range_test", "final"], False)):
        out = tmp_path / "-".join(stages)
        result = tune(str(long_task), out=out, budget_minutes=3.0, stages=stages,
                      executor=AtPlanSpeeds(1 / 10))
        with Study(out, resume=True) as study:
            planned = study.meta("plan")["final_epochs"]
            final = study.trials("final")[0]
        assert planned < 100
        reason = {s["name"]: s for s in result.summary["stages"]}["final"]["reason"]
        assert result.summary["hyperparameters"]["epochs"] == final.spec.budget.epochs
        if lengthened:
            assert planned < final.spec.budget.epochs <= 100
            assert f"the plan's {display.epochs(planned)}, lengthened toward the full 100" \
                in reason
        else:
            assert final.spec.budget.epochs == planned and "lengthened" not in reason


@pytest.mark.parametrize(("length", "noted"), [("@ 25%", True), ("@ full", False)])
def test_the_reports_short_run_note_is_for_short_runs_only(length, noted):
    # a short run's underfitting is its length (its LR has not annealed); a full-length
    # run's is its own, and the note would explain it away
    def run(max_lr, loss):
        spec = TrialSpec("digits", max_lr=max_lr, budget=Budget(steps=10),
                         label=f"max LR {max_lr:g} {length}")
        return TrialResult(spec, "complete", None, None,
                           Diagnosis("underfitting", "", {"noise": 0.0}), loss, None, 10, 1.0)

    parts = _comparison(Comparison.of([run(0.1, 0.5), run(0.01, 0.9)]), "lr",
                        Decision(max_lr=0.1), picture=False)
    assert ("stops before its LR has annealed" in "".join(parts)) is noted
