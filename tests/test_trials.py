"""Trials: which weights a trained model ends with, on real trainings that overfit."""

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from disciplined import display
from disciplined.cli import app
from disciplined.engine import evaluate
from disciplined.recipe import _final_run, kept_words
from disciplined.study import FinalRun, trial_key
from disciplined.tasks import load_task
from disciplined.trials import Budget, Kept, TrialResult, TrialSpec, train


def scored(model: torch.nn.Module, task_file: str) -> tuple[float, float | None]:
    task = load_task(task_file)
    return evaluate(model, task.datasets()[1], task.loss_fn, task.metric, torch.device("cpu"))


def test_a_run_that_overfits_keeps_the_weights_of_its_lowest_validation_loss(
        few_digits_task_file, tmp_path):
    spec = TrialSpec(few_digits_task_file, max_lr=0.1, budget=Budget(epochs=60), eval_samples=None,
                     keep="best", save_model=str(tmp_path / "best.pt"))
    result, model = train(spec)
    assert result.diagnosis is not None and result.diagnosis.verdict == "overfitting"
    kept = result.kept
    assert kept is not None and kept.step < result.history.eval_step[-1]
    assert kept.val_loss == min(result.history.val_loss) < result.val_loss  # the end's stays
    assert result.model_val_loss == kept.val_loss
    # the model returned and the file saved are those weights, scored as the run scored them
    assert scored(model, few_digits_task_file)[0] == pytest.approx(kept.val_loss, rel=1e-5)
    model.load_state_dict(torch.load(tmp_path / "best.pt"))
    assert scored(model, few_digits_task_file) == pytest.approx(
        (kept.val_loss, kept.val_metric), rel=1e-5)
    # the same training keeping its last step: the end's weights, the same run otherwise
    last, end_model = train(dataclasses.replace(spec, keep="last", save_model=None))
    assert last.kept is None and last.val_loss == result.val_loss
    assert last.model_val_loss == last.val_loss
    assert scored(end_model, few_digits_task_file)[0] == pytest.approx(result.val_loss, rel=1e-5)
    assert spec.trains_like(dataclasses.replace(spec, keep="last"))
    # journaled and read back
    assert TrialResult.from_dict(result.to_dict()).kept == kept
    assert TrialSpec.from_dict(spec.to_dict()).keep == "best"
    assert "keep" not in dataclasses.replace(spec, keep="last").to_dict()  # old journals' keys


def test_a_balanced_run_keeps_its_end_though_an_evaluation_was_lower(few_digits_task_file):
    result, _ = train(TrialSpec(few_digits_task_file, max_lr=0.1, budget=Budget(epochs=40),
                                eval_samples=None, keep="best"))
    assert result.diagnosis is not None and result.diagnosis.verdict == "balanced"
    assert result.history is not None and min(result.history.val_loss) < result.val_loss
    assert result.kept is None and result.model_val_loss == result.val_loss


def test_a_classifier_keeps_no_weights_that_score_a_lower_accuracy(few_digits_task_file):
    # unstable at max LR 0.3: its loss is lowest at the first evaluation, its accuracy is not
    result, _ = train(TrialSpec(few_digits_task_file, max_lr=0.3, budget=Budget(epochs=60),
                                eval_samples=None, keep="best"))
    assert result.diagnosis is not None and result.diagnosis.verdict == "unstable"
    history = result.history
    assert history is not None and result.val_metric is not None
    lowest = history.val_loss.index(min(history.val_loss))
    assert lowest < len(history.val_loss) - 1
    assert history.val_metric[lowest] < result.val_metric
    assert result.kept is None


def test_journals_read_before_keep_existed(few_digits_task_file):
    spec = TrialSpec(few_digits_task_file, max_lr=0.1, budget=Budget(epochs=1))
    old = TrialResult(spec, "complete", None, None, None, 0.9, 0.7, 6, 1.0).to_dict()
    del old["kept"]
    assert TrialResult.from_dict(old).kept is None
    assert FinalRun(**{"val_loss": 0.9, "val_metric": 0.7, "steps": 6, "epochs": 1.0,
                       "train_seconds": 1.0}).kept_step is None
    # a full-length run journaled before keeping the best is the same trial when resumed
    assert trial_key("lr", spec) == trial_key("lr", dataclasses.replace(spec, keep="best"))


def test_keep_is_checked():
    with pytest.raises(ValueError, match="keep must be 'last' or 'best', got 'first'"):
        TrialSpec("digits", max_lr=0.1, budget=Budget(epochs=1), keep="first")  # type: ignore[arg-type]


def test_the_final_run_reports_the_model_it_delivers_and_its_end(few_digits_task_file):
    spec = TrialSpec(few_digits_task_file, max_lr=0.1, budget=Budget(epochs=60), eval_samples=None)
    end = TrialResult(spec, "complete", None, None, None, 0.882, 0.71, 360, 1.0)
    run = _final_run(dataclasses.replace(end, kept=Kept(90, 0.872, 0.738)))
    assert (run.val_loss, run.val_metric, run.kept_step) == (0.872, 0.738, 90)
    assert (run.end_val_loss, run.end_val_metric) == (0.882, 0.71)
    summary = {"kept_step": 90, "end_val_loss": 0.882, "end_val_metric": 0.71}
    assert display.kept(summary) == (" (the weights of step 90, where its validation loss "
                                      "was lowest, picked on the very set it is scored by; "
                                      "at its end 0.882, accuracy 71.00%)")
    assert kept_words(dataclasses.replace(end, kept=Kept(90, 0.872, 0.738))) == (
        "; the model keeps the weights of step 90 of 360, where its validation loss was "
        "lowest (0.872, accuracy 73.80%: picked on the validation set, so a little "
        "optimistic), not its end's")
    plain = _final_run(end)
    assert (plain.val_loss, plain.kept_step, plain.end_val_loss) == (0.882, None, None)
    assert display.kept({"kept_step": None}) == kept_words(end) == ""


def test_tune_delivers_the_kept_weights_and_every_output_says_so(few_digits_task_file,
                                                                 tmp_path):
    # the range test reads max LR 0.194 here; 20 epochs at it end unstable, with the lowest
    # validation loss (and a higher accuracy) at an earlier evaluation
    out = tmp_path / "study"
    done = CliRunner().invoke(app, ["tune", few_digits_task_file, "--stages", "final",
                                    "--budget-epochs", "20", "--out", str(out)])
    assert done.exit_code == 0, done.output
    final = json.loads((out / "summary.json").read_text())["final"]
    assert final["kept_step"] is not None and final["spec"]["keep"] == "best"
    assert final["val_loss"] < final["end_val_loss"]
    assert final["val_metric"] >= final["end_val_metric"]
    assert f"(the weights of step {final['kept_step']}, where its validation loss" in \
        done.output.replace("\n", " ")
    assert f"the weights of step {final['kept_step']}, where" in \
        (out / "report.html").read_text()
    model = load_task(few_digits_task_file).model(0)
    model.load_state_dict(torch.load(out / "model.pt"))
    assert scored(model, few_digits_task_file) == pytest.approx(
        (final["val_loss"], final["val_metric"]), rel=1e-5)


def test_the_train_command_keeps_the_best_weights_when_asked(few_digits_task_file, tmp_path):
    # evaluated every epoch, without weight decay, it overfits as the trials above do
    args = ["train", few_digits_task_file, "--max-lr", "0.1", "--wd", "0", "--epochs", "60",
            "--quiet"]
    best = CliRunner().invoke(app, [*args, "--keep", "best", "--out", str(tmp_path / "best")])
    assert best.exit_code == 0, best.output
    assert "model.pt holds the weights of step" in best.output
    last = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "last")])
    assert last.exit_code == 0 and "model.pt holds" not in last.output
    # with weight decay 1e-3 the same training ends balanced: asked for the best, it says
    # the end's weights are what model.pt holds
    balanced = CliRunner().invoke(app, [*args[:4], "--wd", "1e-3", *args[6:], "--keep", "best",
                                        "--out", str(tmp_path / "balanced")])
    assert balanced.exit_code == 0, balanced.output
    assert "model.pt holds the end's weights" in balanced.output
    history = json.loads((tmp_path / "best" / "history.json").read_text())
    lowest = min(history["val_loss"])
    model = load_task(few_digits_task_file).model(0)
    model.load_state_dict(torch.load(tmp_path / "best" / "model.pt"))
    assert scored(model, few_digits_task_file)[0] == pytest.approx(lowest, rel=1e-5)
    model.load_state_dict(torch.load(tmp_path / "last" / "model.pt"))
    assert scored(model, few_digits_task_file)[0] == pytest.approx(history["val_loss"][-1],
                                                                   rel=1e-5)
