"""Trials: which weights a trained model ends with, on real trainings that overfit."""

import dataclasses

import pytest
import torch

from disciplined import display
from disciplined.engine import evaluate
from disciplined.recipe import _final_run, kept_words
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


def test_a_run_whose_end_is_its_best_keeps_its_end(few_digits_task_file):
    result, _ = train(TrialSpec(few_digits_task_file, max_lr=0.1, budget=Budget(epochs=20),
                                eval_samples=None, keep="best"))
    assert result.diagnosis is not None and result.diagnosis.verdict == "balanced"
    assert result.kept is None and result.model_val_loss == result.val_loss


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
                                      "was lowest; at its end 0.882, accuracy 71.00%)")
    assert kept_words(dataclasses.replace(end, kept=Kept(90, 0.872, 0.738))) == (
        "; the model keeps the weights of step 90 of 360, where its validation loss was "
        "lowest (0.872, accuracy 73.80%), not its end's")
    plain = _final_run(end)
    assert (plain.val_loss, plain.kept_step, plain.end_val_loss) == (0.882, None, None)
    assert display.kept({"kept_step": None}) == kept_words(end) == ""
