"""Bad input, table-driven: every case is refused with exit code 2 and one line that says what
was wrong, never a traceback, and leaves the disk as it found it (nothing half-written,
nothing lost). A fuzz pass over arguments and task files asserts "a clear error or success"."""

import json
import os
import subprocess
import sys
import textwrap
import typing
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from disciplined import TrialSpec, cli, tune
from disciplined.engine import AMP_CHOICES
from disciplined.errors import DisciplinedError
from disciplined.policies import POLICIES
from disciplined.range_test import Mode
from disciplined.searches import WeightDecayMode
from disciplined.study import Study
from disciplined.tasks import TaskError, load_task
from disciplined.trials import Budget, Keep

runner = CliRunner()

TASK = """
import numpy as np
import torch
from torch.utils.data import TensorDataset

def build_model():
    return torch.nn.Linear(8, 3)

def build_datasets():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn({n}, 8, generator=g), torch.randint(0, 3, ({n},), generator=g)
    return {datasets}
"""
TASKS = {  # name: (samples, what build_datasets returns)
    "tensors": (200, "x, y"),
    "arrays": (200, "x.numpy(), y.numpy()"),
    "rows": (200, "TensorDataset(x), TensorDataset(x)"),
    "empty": (200, "TensorDataset(x[:0], y[:0]), TensorDataset(x, y)"),
    "doubles": (200, "TensorDataset(x.double(), y), TensorDataset(x.double(), y)"),
    "wide": (200, "TensorDataset(torch.randn(len(y), 9), y), TensorDataset(x, y)"),
    "tiny": (10, "TensorDataset(x, y), TensorDataset(x, y)"),
    "fine": (200, "TensorDataset(x, y), TensorDataset(x, y)"),
    # labels the one-batch check (two samples) cannot see: 0 for those two, 5 after them
    "late_label": (200, "TensorDataset(x, torch.where(torch.arange(len(y)) < 2, 0, 5)), "
                        "TensorDataset(x, y)"),
    # the same in a list of pairs, whose labels are read batch by batch as they train
    "late_label_list": (200, "list(zip(x, torch.where(torch.arange(len(y)) < 2, 0, 5))), "
                             "TensorDataset(x, y)"),
    "late_val_label": (200, "TensorDataset(x, y), TensorDataset(x, torch.full_like(y, -2))"),
    "late_val_label_list": (200, "TensorDataset(x, y), list(zip(x, torch.full_like(y, -2)))"),
}


@pytest.fixture
def task_files(tmp_path):
    for name, (n, datasets) in TASKS.items():
        (tmp_path / f"{name}.py").write_text(TASK.format(n=n, datasets=datasets))
    return tmp_path


PROTOCOL = ("must return two torch Datasets (or DataLoaders) whose items are (input, target) "
            "pairs")
CASES = [  # (command line, words the one-line error must hold)
    (["search", "momentum", "digits", "--max-lr", "-1"], "max_lr must be > 0"),
    (["search", "momentum", "digits", "--epochs", "0"], "epochs must be > 0"),
    (["search", "batch-size", "digits", "--sizes", "0,-4"], "batch sizes must be positive"),
    (["search", "batch-size", "digits", "--sizes", "a,b"], "--sizes takes comma-separated"),
    (["search", "wd", "digits", "--guess", "-1"], "guess must be a weight decay > 0"),
    (["search", "schedule", "digits", "--max-lr", "0.1", "--batch-size", "0"], "--batch-size"),
    (["train", "digits", "--max-lr", "-1"], "max_lr must be a number > 0, got -1"),
    (["train", "digits", "--max-lr", "nan"], "max_lr must be a number > 0, got nan"),
    (["train", "digits", "--max-lr", "0.1", "--wd", "-1"], "weight_decay must be a number >= 0"),
    (["train", "digits", "--max-lr", "0.1", "--epochs", "0"], "epochs must be > 0"),
    (["train", "digits", "--max-lr", "0.1", "--epochs", "inf"], "epochs must be > 0 and finite"),
    (["tune", "digits", "--budget-epochs", "inf"], "budget_epochs must be > 0 and finite"),
    (["train", "digits", "--max-lr", "0.1", "--policy", "nope"], "'nope' is not one of"),
    (["find-lr", "digits", "--wd", "-0.1"], "weight_decay must be a number >= 0"),
    (["find-lr", "digits", "--steps", "0"], "num_steps must be an int >= 2"),
    (["find-lr", "digits", "--start-lr", "1", "--end-lr", "0.1"], "end_lr must be > start_lr"),
    (["find-lr", "digits", "--mode", "log"], "'log' is not one of"),
    (["tune", "digits", "--budget-minutes", "-1"], "budget_minutes must be > 0"),
    (["tune", "digits", "--stages", "range_test,nap"], "unknown stage 'nap'"),
    (["tune", "digits", "--stages", "momentun"], "unknown stage 'momentun' (did you mean "
                                                 "'momentum'?)"),
    (["tune", "digits", "--stages", "lr,refine"], "the refine stage corrects the final "
                                                  "training: add 'final' to the stages"),
    (["tune", "digits", "--executor", "slurm"], "'slurm' is not one of"),
    (["train", "{tmp}/tensors.py", "--max-lr", "0.1"], f"{PROTOCOL}, e.g. TensorDataset(x, y); "
                                                       "its training dataset is of type Tensor"),
    (["find-lr", "{tmp}/arrays.py"], "its training dataset is of type ndarray"),
    (["tune", "{tmp}/rows.py"], "item 0 of its training dataset is a tuple of 1"),
    (["train", "{tmp}/empty.py", "--max-lr", "0.1"], "its training dataset is empty"),
    (["train", "{tmp}/doubles.py", "--max-lr", "0.1"],
     "the model and loss fail on a batch of the training data (inputs Tensor of shape (2, 8) "
     "(torch.float64)"),
    (["find-lr", "{tmp}/wide.py"], "(inputs Tensor of shape (2, 9) (torch.float32)"),
    (["train", "{tmp}/tiny.py", "--max-lr", "0.1", "--epochs", "1"],
     "1cycle needs at least 3 optimizer steps"),
    (["train", "{tmp}/missing.py", "--max-lr", "0.1"], "missing.py"),
    # a TensorDataset's class labels are checked whole, before any training (on a GPU an
    # out-of-range label is a device-side assert at some later step, which no line explains)
    (["train", "{tmp}/late_label.py", "--max-lr", "0.1"],
     "the training targets hold class 5 (sample 2), but the model scores 3 classes (0..2)"),
    (["find-lr", "{tmp}/late_label.py"], "the training targets hold class 5 (sample 2)"),
    (["train", "{tmp}/late_val_label.py", "--max-lr", "0.1"],
     "the validation targets hold class -2 (sample 0), but the model scores 3 classes"),
    # read batch by batch on the host, before the loss reads them (on a GPU a device-side
    # assert, after which the process could use the GPU no more): the same line everywhere
    (["train", "{tmp}/late_label_list.py", "--max-lr", "0.1"],
     "a training batch (at training step 0) holds class 5, but the model scores 3 classes "
     "(0..2)"),
    (["find-lr", "{tmp}/late_label_list.py"],
     "a training batch (at range test step 0) holds class 5"),
    (["train", "{tmp}/late_val_label_list.py", "--max-lr", "0.1"],
     "the validation targets hold class -2 (sample 0), but the model scores 3 classes "
     "(0..2): fix the labels, or the model's number of outputs; if -2 marks labels to skip, "
     "say loss_fn = nn.CrossEntropyLoss(ignore_index=-2)"),
]


@pytest.mark.parametrize(("args", "message"), CASES,
                         ids=[" ".join(getattr(c, "values", c)[0][:3]) for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(task_files, args, message):
    out = task_files / "out"
    args = [a.format(tmp=task_files) for a in args]
    result = runner.invoke(cli.app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # refused before any work


def test_a_misspelt_required_function_is_named(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(TASK.format(n=200, datasets="TensorDataset(x, y), TensorDataset(x, y)")
                    .replace("def build_datasets", "def build_dataset"))
    result = runner.invoke(cli.app, ["find-lr", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "must define build_datasets() (it defines build_dataset() for build_datasets(): " \
        "misspelt?)" in " ".join(result.output.split()), result.output


def test_train_and_tune_never_replace_the_others_model(task_files):
    # a tune folder's model.pt lies under its summary and report; a train folder's under its
    # history: each command is refused the other's folder, which it leaves as it found it
    task = str(task_files / "fine.py")
    studied, trained = task_files / "studied", task_files / "trained"
    ran = runner.invoke(cli.app, ["tune", task, "--out", str(studied), "--budget-epochs", "5",
                                  "--stages", "range_test,final", "--quiet"])
    assert ran.exit_code == 0, ran.output
    ran = runner.invoke(cli.app, ["train", task, "--max-lr", "0.1", "--epochs", "5",
                                  "--out", str(trained), "--quiet"])
    assert ran.exit_code == 0, ran.output
    before = {p: p.read_bytes() for d in (studied, trained) for p in d.iterdir() if p.is_file()}
    for args, message in (
            (["train", task, "--max-lr", "0.1", "--epochs", "5", "--out", str(studied)],
             "holds a tune study (study.db): train would replace its model.pt"),
            (["tune", task, "--budget-epochs", "5", "--out", str(trained)],
             "holds a model.pt that no tune study wrote")):
        result = runner.invoke(cli.app, [*args, "--quiet"])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split()), result.output
    after = {p: p.read_bytes() for d in (studied, trained) for p in d.iterdir() if p.is_file()}
    assert after == before
    # the same command again in its own folder goes on as before
    again = runner.invoke(cli.app, ["train", task, "--max-lr", "0.05", "--epochs", "5",
                                    "--out", str(trained), "--quiet"])
    assert again.exit_code == 0, again.output


WRONG_QUESTION = """
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

def build_model():
    return torch.nn.Linear(8, {outputs})

def build_datasets():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    y = {targets}
    return TensorDataset(x, y), TensorDataset(x, y)

{loss}
"""


@pytest.mark.parametrize(("outputs", "targets", "loss", "message"), [
    # no loss_fn: a cross entropy, which over one class is 0 whatever the model does (a
    # regression task would train, "converge" and report a loss of 0)
    (1, "x[:, :1]", "", "the model scores a single class (its output is (2, 1)), and "
                        "CrossEntropyLoss over one class is 0 whatever the model does"),
    # elementwise losses broadcast outputs and targets of other shapes against each other
    (3, "torch.randint(0, 3, (200,), generator=g)", "loss_fn = torch.nn.MSELoss()",
     "MSELoss compares the model's output (2, 3) with targets of another shape, (2,): torch "
     "would broadcast them against each other and compare every output with every target; "
     "the targets look like class labels: for those, set loss_fn = "
     "torch.nn.CrossEntropyLoss()"),
    (1, "x[:, 0]", "loss_fn = torch.nn.L1Loss()", "y.unsqueeze(-1) in build_datasets"),
    (1, "x[:, 0]", "loss_fn = F.mse_loss", "mse_loss compares the model's output (2, 1) with "
                                            "targets of another shape, (2,)"),
    (1, "x[:, :1, None]", "loss_fn = torch.nn.MSELoss()", "y.squeeze(-1) in build_datasets"),
])
def test_a_loss_that_would_answer_the_wrong_question_is_refused(tmp_path, outputs, targets,
                                                                 loss, message):
    task = tmp_path / "wrong.py"
    task.write_text(WRONG_QUESTION.format(outputs=outputs, targets=targets, loss=loss))
    out = tmp_path / "out"
    result = runner.invoke(cli.app, ["tune", str(task), "--out", str(out)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert message in said and str(task) in said, result.output
    assert "Traceback" not in result.output and "UserWarning" not in result.output
    assert not out.exists()


def test_an_error_in_the_users_loss_names_its_line(tmp_path):
    """An exception raised by the task's own code mid-training (after the one-batch check
    passed) is one line naming the batch and the task file's line, not a traceback."""
    task = tmp_path / "buggy.py"
    task.write_text(TASK.format(n=200, datasets="TensorDataset(x, y), TensorDataset(x, y)") +
                    textwrap.dedent("""
                    calls = []

                    def loss_fn(out, y):
                        calls.append(1)
                        if len(calls) == 3:
                            raise RuntimeError("my bug")
                        return torch.nn.functional.cross_entropy(out, y)
                    """))
    line = task.read_text().splitlines().index('        raise RuntimeError("my bug")') + 1
    result = runner.invoke(cli.app, ["train", str(task), "--max-lr", "0.1", "--batch-size", "50",
                                     "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    # the check's batch is call 1, training step 0 call 2: step 1 raises
    assert "failed on a batch at training step 1" in text, text
    assert f"RuntimeError: my bug [raised at {task}:{line} in loss_fn]" in text, text
    assert "Traceback" not in result.output


def _corrupt_study(directory):
    directory.mkdir()
    noise = bytes(range(256)) * 16
    (directory / "study.db").write_bytes(noise)
    return noise


@pytest.mark.parametrize("args", [["tune", "digits", "--resume"], ["tune", "digits"],
                                  ["report"]])
def test_a_corrupt_journal_is_said_and_kept(tmp_path, args):
    study = tmp_path / "study"
    noise = _corrupt_study(study)
    command = [*args, str(study)] if args == ["report"] else [*args, "--out", str(study)]
    (study / "summary.json").write_text(json.dumps(
        {"task": "digits", "seed": 0, "hyperparameters": {}, "final": {}, "stages": [],
         "wall_seconds_total": 1.0}))
    result = runner.invoke(cli.app, command)
    assert result.exit_code == 2, result.output
    assert "unreadable" in result.output and "another --out" in result.output
    assert "Traceback" not in result.output
    assert (study / "study.db").read_bytes() == noise


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"task": "digits"}', "\udcff"])
def test_a_garbage_summary_names_its_file(tmp_path, text):
    copy = tmp_path / "copy"
    with Study(copy):  # a readable journal beside it
        pass
    (copy / "summary.json").write_text(text, errors="surrogateescape")
    result = runner.invoke(cli.app, ["report", str(copy)])
    assert result.exit_code == 2, result.output
    assert str(copy / "summary.json") in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (copy / "report.html").exists()


def test_the_library_refuses_what_the_command_line_refuses(task_files):
    with pytest.raises(ValueError, match="max_lr must be a number > 0"):
        TrialSpec("digits", max_lr=0.0, budget=Budget(epochs=1))
    with pytest.raises(ValueError, match=r"momentum \(beta1 for Adam\) must lie in \[0, 1\)"):
        TrialSpec("digits", max_lr=0.1, budget=Budget(epochs=1), momentum=(0.95, 1.0))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrialSpec("digits", max_lr=0.1, budget=Budget(epochs=1), batch_size=0)
    with pytest.raises(TaskError, match="its training dataset is of type Tensor"):
        load_task(str(task_files / "tensors.py")).datasets()
    with pytest.raises(TaskError, match="fail on a batch"):
        load_task(str(task_files / "wide.py")).loaded()
    with pytest.raises(DisciplinedError, match="unreadable"):
        corrupt = task_files / "corrupt"
        _corrupt_study(corrupt)
        tune("digits", out=corrupt, resume=True)


def test_the_command_lines_choices_are_the_librarys():
    assert typing.get_args(cli.RangeMode) == typing.get_args(Mode)
    assert typing.get_args(cli.PolicyName) == POLICIES
    assert typing.get_args(cli.WeightDecayModeName) == typing.get_args(WeightDecayMode)
    assert typing.get_args(cli.AmpName) == AMP_CHOICES
    assert typing.get_args(cli.KeepName) == typing.get_args(Keep)


def test_conventions_version_short_help_and_choices_shown():
    assert runner.invoke(cli.app, ["--version"]).output.startswith("disciplined ")
    shown = runner.invoke(cli.app, ["train", "-h"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "one-cycle|one-cycle-cos|clr" in shown.output
    assert "--quiet <bool>" not in " ".join(shown.output.split())
    assert "--install-completion" in runner.invoke(cli.app, ["-h"]).output


def test_ctrl_c_says_what_was_kept_and_how_to_resume(tmp_path):
    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "-m", "disciplined.cli", "tune", "digits", "--out",
                             str(out), "--budget-epochs", "4", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    for line in proc.stdout:  # once a stage is journaled, there is something to keep
        seen.append(line)
        if "-> range_test" in line:
            break
    proc.send_signal(2)  # SIGINT, as Ctrl-C sends
    after, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"read before the signal: {seen}\nafter: {after}\n{err}"
    assert "interrupted:" in err and str(out / "study.db") in err
    assert f"disciplined tune digits --out {out} --budget-epochs 4 --quiet --resume" in err
    assert "Traceback" not in err


# --- fuzz ---------------------------------------------------------------------------------

NUMBERS = st.sampled_from(["-1", "0", "1e-9", "0.1", "3", "nan", "inf", "1e400", "x", ""])


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(max_lr=NUMBERS, wd=NUMBERS, epochs=NUMBERS, batch=NUMBERS,
       momentum=st.sampled_from(["0.95,0.85", "0.9", "1,0", "a,b", "-0.1,0.5", "0.5,0.5,0.5"]))
def test_fuzz_train_arguments_give_a_clear_error_or_a_result(task_files, max_lr, wd, epochs,
                                                             batch, momentum):
    out = task_files / f"fuzz-{uuid.uuid4().hex}"  # examples share the fixture's folder
    result = runner.invoke(cli.app, [
        "train", str(task_files / "fine.py"), "--max-lr", max_lr, "--wd", wd, "--epochs",
        epochs, "--batch-size", batch, "--momentum", momentum, "--out", str(out), "--quiet"])
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert not out.exists()


PIECES = {
    "model": ["torch.nn.Linear(8, 3)", "torch.nn.Linear(8, 1)", "torch.nn.Linear(5, 3)",
              "None", "torch.nn.Sequential()"],
    "datasets": ["TensorDataset(x, y), TensorDataset(x, y)", "x, y", "(x, y)",
                 "TensorDataset(x, y)", "[TensorDataset(x, y.float()), TensorDataset(x, y)]",
                 "TensorDataset(x[:0], y[:0]), TensorDataset(x, y)",
                 "TensorDataset(x, y, y), TensorDataset(x, y)", "None", "1 / 0"],
    "loss": ["", "loss_fn = torch.nn.MSELoss()", "loss_fn = lambda out, y: out.sum(1)",
             "loss_fn = 3"],
    "extra": ["", "batch_size = 0", "optimizer = 'lion'", "epochs = -2", "batch_size = 'x'"],
}


@settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(PIECES["model"]), datasets=st.sampled_from(PIECES["datasets"]),
       loss=st.sampled_from(PIECES["loss"]), extra=st.sampled_from(PIECES["extra"]))
def test_fuzz_task_files_give_a_clear_error_or_a_result(tmp_path, model, datasets, loss, extra):
    task = tmp_path / f"fuzzed_{uuid.uuid4().hex}.py"
    task.write_text(textwrap.dedent(f"""
        import torch
        from torch.utils.data import TensorDataset

        def build_model():
            return {model}

        def build_datasets():
            torch.manual_seed(0)  # the same data at every call: a failure reproduces
            x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
            return {datasets}

        {loss}
        {extra}
        """))
    out = tmp_path / f"out-{task.stem}"
    result = runner.invoke(cli.app, ["train", str(task), "--max-lr", "0.05", "--epochs", "1",
                                     "--batch-size", "8", "--out", str(out), "--quiet"])
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
