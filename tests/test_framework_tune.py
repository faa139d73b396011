"""`tune`, `train` and `find-lr` on tasks that Lightning and the Hugging Face Trainer train
(tests/lightning_task.py, tests/hf_task.py): each ends with a report, resumes from its
journal, trains the policy it was given in the framework's optimizer steps, runs its
trials on Ray, and refuses what it cannot do in words."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import statistics
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pl = pytest.importorskip("lightning.pytorch")
transformers = pytest.importorskip("transformers")

from hf_task import ARGS, accuracy, datasets  # noqa: E402
from hf_tiny import model_init  # noqa: E402
from launch import torchrun  # noqa: E402
from lightning_digits import DigitsData, DigitsModule  # noqa: E402

from disciplined import hf, lightning  # noqa: E402
from disciplined.cli import app  # noqa: E402
from disciplined.errors import DisciplinedError  # noqa: E402
from disciplined.policies import policy_schedules  # noqa: E402
from disciplined.recipe import tune  # noqa: E402
from disciplined.tasks import TaskError, load_task  # noqa: E402
from disciplined.trials import Budget, TrialSpec, train  # noqa: E402

HERE = Path(__file__).parent
LIGHTNING_TASK = str(HERE / "lightning_task.py")
HF_TASK = str(HERE / "hf_task.py")
runner = CliRunner()


def trials_per_stage(out: Path) -> dict[str, int]:
    with sqlite3.connect(out / "study.db") as db:
        return dict(db.execute("SELECT stage, COUNT(*) FROM trials WHERE state = 'complete' "
                               "GROUP BY stage").fetchall())


def test_tune_on_a_lightning_task_ends_with_a_report_resumes_and_reproduces(tmp_path):
    out = tmp_path / "study"
    result = runner.invoke(app, ["tune", LIGHTNING_TASK, "--budget-epochs", "3", "--out",
                                 str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"]["val_metric"] > 0.9  # digits, 3 epochs
    counts = trials_per_stage(out)
    assert counts["lr"] >= 2 and counts["final"] == 1  # the LR decided by short runs
    report = (out / "report.html").read_text()
    assert "lightning_task" in report and "weight_decay" in report
    # the journal is resumed: every decision again, no trial trained again
    again = tune(LIGHTNING_TASK, out=out, budget_epochs=3, resume=True)
    assert again.hyperparameters == summary["hyperparameters"]
    assert trials_per_stage(out) == counts
    # train.py's specification trains the final model again, to the same numbers
    reproduced, _ = train(TrialSpec.from_dict(summary["final"]["spec"]))
    assert reproduced.val_loss == pytest.approx(summary["final"]["val_loss"], rel=1e-5)
    # find-lr runs the range test in Lightning too
    found = runner.invoke(app, ["find-lr", LIGHTNING_TASK, "--out", str(tmp_path / "lr")])
    assert found.exit_code == 0, found.output
    assert json.loads((tmp_path / "lr" / "lr_range.json").read_text())["max_lr"] > 0


def test_a_lightning_trial_trains_the_policy_in_optimizer_steps(tmp_path):
    task = lightning.task(DigitsModule, DigitsData, metric="val_acc", accelerator="cpu",
                          accumulate_grad_batches=2)
    spec = TrialSpec("lightning", max_lr=0.1, budget=Budget(epochs=2), weight_decay=1e-3,
                     eval_every=5, eval_samples=None)
    result, module = train(spec, task=task)
    h = result.history
    batches = math.ceil(len(DigitsData().train) / 64)
    steps = 2 * math.ceil(batches / 2)  # two batches to each optimizer step
    assert h.step == list(range(steps))
    lr, momentum = policy_schedules("one-cycle", steps, 0.1)
    assert h.lr == pytest.approx([lr(i) for i in range(steps)])
    assert h.momentum == pytest.approx([momentum(i) for i in range(steps)])
    assert h.eval_step == [*range(5, steps, 5), steps]  # every 5 steps, and at the end
    # a step's loss is its micro-batches' mean, not Lightning's share of it per micro-batch
    assert h.train_loss[0] == pytest.approx(math.log(10), abs=0.25)
    assert module.trainer.optimizers[0].param_groups[0]["weight_decay"] == 1e-3
    assert result.diagnosis is not None and result.val_metric > 0.5  # chance: 0.1


def test_an_hf_trial_with_accumulation_reads_each_steps_mean_loss():
    """With accumulation, the Trainer sums a sequence classifier's micro-batch losses (its
    model takes **kwargs, so it expects them divided by a label count that the model
    ignores); the trial reads their mean, and evaluates the same loss the model gives."""
    args = dataclasses.replace(ARGS, gradient_accumulation_steps=2)
    task = hf.task(model_init, datasets, args, compute_metrics=accuracy, metric="accuracy")
    spec = TrialSpec("hf", max_lr=1e-3, budget=Budget(steps=4), eval_samples=None)
    result, model = train(spec, task=task)
    # an untrained classifier of two classes starts at a loss of ln 2 = 0.69, not 1.39
    assert result.history.train_loss[0] == pytest.approx(math.log(2), rel=0.05)
    _, val = datasets()
    batch = {k: torch.stack([val[i][k] for i in range(len(val))]) for k in val[0]}
    model.eval()
    with torch.no_grad():
        assert result.val_loss == pytest.approx(float(model(**batch).loss), rel=1e-3)


def test_tune_on_an_hf_task_decides_the_lr_by_short_runs_and_beats_the_default(tmp_path):
    study = tune(HF_TASK, out=tmp_path / "study", budget_epochs=1,
                 stages=["range_test", "lr", "final"])
    assert (tmp_path / "study" / "report.html").exists()
    assert trials_per_stage(tmp_path / "study")["lr"] >= 2
    ours = study.summary["final"]["val_loss"]
    # the Trainer's default: linear decay from 5e-5, the same length, data and model
    args = dataclasses.replace(ARGS, output_dir=str(tmp_path / "default"), num_train_epochs=1,
                               save_strategy="no", eval_strategy="no", disable_tqdm=True)
    train_data, val_data = datasets()
    default = transformers.Trainer(model_init=model_init, args=args, train_dataset=train_data,
                                   eval_dataset=val_data)
    default.train()
    assert ours < 0.5 * default.evaluate()["eval_loss"]


def test_tune_on_an_hf_task_under_torchrun_reads_the_mean_loss(tmp_path):
    """Two processes: rank 0 speaks for both, both train every trial (ranks that decided
    apart would hang a collective and time out), and the losses read are the mean loss, not
    the Trainer's per-process multiple of it (transformers #35078: with
    average_tokens_across_devices, a sequence classifier's loss comes out x2 here)."""
    out = tmp_path / "study"
    done = torchrun("-m", "disciplined.cli", "tune", HF_TASK, "--out", str(out),
                    "--budget-epochs", "1", "--stages", "range_test,lr,final", "--quiet")
    assert done.stdout.count("chosen hyper-parameters") == 1
    assert "total batch 64 (32 per process x 2 processes)" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_parallel"]["world_size"] == 2
    assert trials_per_stage(out)["lr"] >= 2
    with sqlite3.connect(out / "study.db") as db:
        (payload,) = db.execute("SELECT payload FROM stages WHERE name = 'range_test'").fetchone()
        first_lr_trial = json.loads(db.execute(
            "SELECT result FROM trials WHERE stage = 'lr' ORDER BY rowid").fetchone()[0])
    # an untrained classifier of two classes starts at a loss of ln 2 = 0.69
    sweep = json.loads(payload)["range_test"]["runs"][0]["loss"]
    assert statistics.mean(sweep[:5]) == pytest.approx(math.log(2), rel=0.05)
    assert first_lr_trial["history"]["train_loss"][0] == pytest.approx(math.log(2), rel=0.05)
    # the final model's validation loss, evaluated here in one process, is the one reported,
    # not twice it; the Trainer's evaluation under 2 processes reads 2% lower than this one
    # on every trial (0.631 against 0.645; at chance they agree): not explained yet, hence
    # a 5% tolerance
    model = model_init()
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    model.eval()
    _, val = datasets()
    batch = {k: torch.stack([val[i][k] for i in range(len(val))]) for k in val[0]}
    with torch.no_grad():
        assert summary["final"]["val_loss"] == pytest.approx(float(model(**batch).loss),
                                                             rel=0.05)


@pytest.mark.parametrize(("call", "words"), [
    (lambda out: tune(HF_TASK, out=out, stages=["range_test", "final"]),
     "keep the lr stage"),
    (lambda out: tune(LIGHTNING_TASK, out=out, stages=["range_test", "batch_size"]),
     "batch_size stage cannot run on a Lightning task"),
    (lambda out: tune(LIGHTNING_TASK, out=out, amp="bf16"), "--amp and --compile"),
    (lambda out: load_task(LIGHTNING_TASK).datasets(), "use tune, train or find-lr"),
    (lambda out: train(TrialSpec(LIGHTNING_TASK, max_lr=0.1, budget=Budget(steps=4)),
                       task=lightning.task(DigitsModule, DigitsData, monitor="loss_on_val",
                                           accelerator="cpu")),
     "logs no 'loss_on_val'"),
    (lambda out: train(TrialSpec(LIGHTNING_TASK, max_lr=0.1, budget=Budget(steps=4)),
                       task=lightning.task(DigitsModule, DigitsData, optimizer="adamw",
                                           accelerator="cpu")),
     "trains with SGD, but the task says optimizer='adamw': say optimizer='sgd'"),
    (lambda out: lightning.task(DigitsModule, DigitsData, max_epochs=3),
     "sets max_epochs of each trial's Trainer itself"),
    (lambda out: hf.task(model_init, datasets, dataclasses.replace(ARGS, optim="rmsprop")),
     "args.optim is 'rmsprop'"),
])
def test_what_a_framework_task_cannot_do_is_refused_in_words(tmp_path, call, words):
    with pytest.raises((DisciplinedError, TypeError)) as caught:
        call(tmp_path / "out")
    assert words in str(caught.value)
    assert not (tmp_path / "out" / "study.db").exists() or caught.type is TaskError


def test_tune_runs_a_lightning_tasks_trials_on_ray(ray_executor, tmp_path):
    # a Ray worker gets the task file's text alone: this one finds the helpers by path
    task_file = tmp_path / "on_ray.py"
    task_file.write_text(f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
                         "from lightning_task import TASK\n")
    study = tune(str(task_file), out=tmp_path / "ray", budget_epochs=2,
                 stages=["range_test", "weight_decay"], executor=ray_executor)
    assert trials_per_stage(tmp_path / "ray")["weight_decay"] >= 2
    assert "Ray node" in (tmp_path / "ray" / "report.html").read_text()
    assert study.hyperparameters["weight_decay"] is not None


def test_train_refuses_to_keep_the_best_weights_of_a_framework_task(tmp_path):
    out = tmp_path / "train"
    result = runner.invoke(app, ["train", LIGHTNING_TASK, "--max-lr", "0.1", "--keep", "best",
                                 "--out", str(out)])
    assert result.exit_code == 2
    assert "--keep best reads our engine's evaluations" in result.output
    assert not (out / "model.pt").exists()
