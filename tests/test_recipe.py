"""`tune` end to end on digits, the journal's resume after SIGKILL, task files, the report."""

import base64
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser

import matplotlib.image
import pytest
import torch
from typer.testing import CliRunner

from disciplined.cli import app
from disciplined.errors import DisciplinedError
from disciplined.recipe import tune
from disciplined.study import Study, StudyBusyError

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


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    return out, tune("digits", out=out, **TINY)


def test_tune_writes_a_complete_summary(digits_study):
    out, result = digits_study
    s = json.loads((out / "summary.json").read_text())
    assert s == result.summary
    assert s["task"] == "digits"
    hp = s["hyperparameters"]
    assert set(hp) >= {"max_lr", "min_lr", "momentum", "weight_decay", "batch_size", "epochs"}
    assert hp["min_lr"] == pytest.approx(hp["max_lr"] / 10)
    assert hp["momentum"][0] in (0.99, 0.97, 0.95, 0.9) and hp["momentum"][1] == 0.85
    assert [st["name"] for st in s["stages"]] == ["range_test", "momentum", "weight_decay",
                                                  "confirm", "final"]
    for st in s["stages"]:
        assert set(st) >= {"name", "decision", "trials", "wall_seconds"}
    assert s["stages"][1]["trials"] == 4 and s["stages"][2]["trials"] >= 4
    assert s["final"]["val_metric"] > 0.9 and s["final"]["epochs"] == 4
    assert s["wall_seconds_total"] > 0
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_the_report_is_self_contained_and_its_images_decode(digits_study):
    out, _ = digits_study
    page = (out / "report.html").read_text()
    parser = Images()
    parser.feed(page)
    assert len(parser.sources) >= 5
    for src in parser.sources:
        assert src.startswith("data:image/png;base64,")  # nothing fetched over a network
        png = base64.b64decode(src.split(",", 1)[1])
        assert matplotlib.image.imread(io.BytesIO(png), format="png").shape[0] > 100
    text = " ".join(parser.text)
    for expected in ("Chosen hyper-parameters", "Budget spent per stage", "Stage: momentum",
                     "Smith's rule", "lowest early validation loss", "Final schedules",
                     "Training curves"):
        assert expected in text or expected in page
    assert not re.search(r"(src|href)=\"https?://", page)
    (out / "report.html").write_text("stale")
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").read_text() == page  # rebuilt from the journal alone


def test_train_py_reproduces_the_final_training(digits_study):
    out, _ = digits_study
    run = subprocess.run([sys.executable, "train.py"], cwd=out, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    accuracy = float(re.search(r"accuracy ([\d.]+)%", run.stdout).group(1)) / 100
    assert accuracy > 0.85
    assert (out / "model_reproduced.pt").exists()


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


def test_a_classification_task_file_runs_through_tune(tmp_path, digits_task_file):
    result = tune(str(digits_task_file), out=tmp_path / "out", budget_epochs=4, seed=3)
    task = digits_task_file
    assert result.summary["task"] == str(task)
    assert result.summary["final"]["val_metric"] > 0.8
    assert result.summary["seed"] == 3
    assert "SEED = 3" in (tmp_path / "out" / "train.py").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tune", "digits", "--budget-epochs", "-1"], "budget_epochs must be > 0"),
        (["tune", "digits", "--budget-minutes", "0"], "budget_minutes must be > 0"),
        (["tune", "digits", "--stages", "range_test,magic"], "unknown stage 'magic'"),
        (["tune", "missing_task.py"], "unknown task"),
        (["report", "/nonexistent/dir"], "holds no finished study"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_code_2(tmp_path, args, message):
    result = runner.invoke(app, [*args, "--out", str(tmp_path)] if args[0] == "tune" else args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
