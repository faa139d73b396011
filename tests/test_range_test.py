"""The LR range test on real data: exact restoration, suggestions, repeats, results."""

import random

import numpy as np
import pytest
import torch

from disciplined import engine
from disciplined.curves import smooth
from disciplined.engine import build_optimizer
from disciplined.plot import plot_range_test
from disciplined.range_test import (
    RangeCurve,
    RangeTestResult,
    lr_range_test,
    read_sweep,
    rule_min_div_10,
    rule_smith,
    rule_steepest,
    rule_valley,
    skipped,
)
from disciplined.tasks import TaskError, digits_cnn, digits_datasets, load_task

DIGITS = digits_datasets()
LOSS = torch.nn.CrossEntropyLoss()


def setup(optimizer="sgd"):
    torch.manual_seed(0)
    model = digits_cnn()
    opt = build_optimizer(optimizer, model, lr=0.05, momentum=0.9, weight_decay=5e-4)
    # one real step so the optimizer has state (momentum buffers) worth restoring
    loss = LOSS(model(DIGITS[0].tensors[0][:64]), DIGITS[0].tensors[1][:64])
    loss.backward()
    opt.step()
    opt.zero_grad()
    return model, opt


def snapshot(model, opt):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {k: {n: t.clone() for n, t in s.items()} for k, s in opt.state_dict()["state"].items()},
            [dict((k, v) for k, v in g.items() if k != "params")
             for g in opt.state_dict()["param_groups"]],
            torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate())


def assert_restored(before, model, opt):
    after = snapshot(model, opt)
    assert before[0].keys() == after[0].keys()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1].keys() == after[1].keys()
    assert all(torch.equal(before[1][k][n], after[1][k][n])
               for k in before[1] for n in before[1][k])
    assert before[2] == after[2]
    assert torch.equal(before[3], after[3])
    assert np.array_equal(before[4], after[4]) and before[5] == after[5]


@pytest.mark.parametrize("on_disk", [False, True])
def test_a_finished_test_restores_model_optimizer_and_rngs_exactly(on_disk):
    model, opt = setup()
    before = snapshot(model, opt)
    result = lr_range_test(model, opt, LOSS, DIGITS[0], start_lr=1e-4, end_lr=1.0,
                           num_steps=60, batch_size=64, keep_state_on_disk=on_disk)
    assert result.stop_reason == "end_lr reached" and len(result.runs[0].lr) == 60
    assert_restored(before, model, opt)


def test_a_diverged_test_stops_early_and_restores_exactly():
    model, opt = setup()
    before = snapshot(model, opt)
    result = lr_range_test(model, opt, LOSS, DIGITS[0], start_lr=1e-3, end_lr=1e4,
                           num_steps=150, batch_size=64)
    assert result.stop_reason.startswith("diverged") or result.stop_reason == "loss not finite"
    assert len(result.runs[0].lr) < 150
    assert_restored(before, model, opt)


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_a_loss_that_raises_midway_leaves_everything_restored(error):
    model, opt = setup("adamw")
    before = snapshot(model, opt)
    calls = {"n": 0}

    def flaky_loss(out, y):
        calls["n"] += 1
        if calls["n"] == 20:
            raise error("loss failed")
        return LOSS(out, y)

    # the user's error comes chained to one that names the batch; Ctrl-C stays itself
    with pytest.raises(TaskError if error is Boom else error) as raised:
        lr_range_test(model, opt, flaky_loss, DIGITS[0], start_lr=1e-4, end_lr=1.0,
                      num_steps=50, batch_size=64, momentum=(0.95, 0.85))
    if error is Boom:
        assert isinstance(raised.value.__cause__, Boom)
        assert "range test step 19" in str(raised.value)
    assert calls["n"] == 20
    assert_restored(before, model, opt)


def test_suggested_max_lr_lies_where_the_loss_still_decreases():
    model, opt = setup()
    result = lr_range_test(model, opt, LOSS, DIGITS[0], start_lr=1e-5, end_lr=10.0,
                           num_steps=150, batch_size=64, momentum=(0.95, 0.85))
    run = result.runs[0]
    lrs, smoothed = np.array(run.lr), np.array(run.smoothed)
    i = int(np.searchsorted(lrs, result.max_lr))
    i_min = int(np.argmin(smoothed))
    assert i < i_min  # before the minimum
    assert smoothed[i] < smoothed[0] - 0.3  # well below the starting loss
    assert smoothed[min(i + 5, i_min)] < smoothed[i]  # still falling there
    assert result.min_lr == pytest.approx(result.max_lr / 10)
    assert result.cyclic_min_lr == pytest.approx(result.max_lr / 4)
    assert run.momentum[0] == 0.95 and run.momentum[-1] < run.momentum[0]


def test_repeats_give_a_median_and_a_spread():
    model, opt = setup()
    result = lr_range_test(model, opt, LOSS, DIGITS[0], start_lr=1e-5, end_lr=10.0,
                           num_steps=80, batch_size=64, repeats=3)
    assert len(result.runs) == 3 and len({r.seed for r in result.runs}) == 3
    assert result.runs[0].loss != result.runs[1].loss  # different data orders
    for sugg in result.suggestions.values():
        assert len(sugg.values) == 3
    smith = result.suggestions["smith"]
    low, high = smith.spread
    assert low <= smith.value <= high


def test_validation_mode_reads_the_validation_loss_on_mnist1d(tmp_path):
    task = load_task("mnist1d")
    train, val = task.datasets()
    torch.manual_seed(0)
    model = task.model()
    opt = build_optimizer("sgd", model)
    result = lr_range_test(model, opt, task.loss_fn, train, val_data=val, start_lr=1e-4,
                           end_lr=10.0, num_steps=100, batch_size=100, val_every=5,
                           val_samples=500, metric="accuracy")
    run = result.runs[0]
    assert result.source == "val"
    assert run.val_step[:3] == [4, 9, 14] and len(run.val_loss) == len(run.val_metric)
    assert result.max_lr is not None and 1e-4 < result.max_lr < 10
    again = RangeTestResult.from_json(result.to_json())
    assert again == result
    assert plot_range_test(result, tmp_path / "lr.png").stat().st_size > 0
    assert set(again.to_dict()) >= {"max_lr", "min_lr", "suggestions", "runs"}


def test_bad_arguments_are_refused_before_anything_changes():
    model, opt = setup()
    before = snapshot(model, opt)
    for kwargs, message in [({"start_lr": 1.0, "end_lr": 0.1}, "end_lr must be > start_lr"),
                            ({"mode": "log"}, "mode must be one of"),
                            ({"repeats": 0}, "repeats must be"),
                            ({"diverge_factor": 0.5}, "diverge_factor must be")]:
        with pytest.raises(ValueError, match=message):
            lr_range_test(model, opt, LOSS, DIGITS[0], **kwargs)
    assert_restored(before, model, opt)


# --- the rules on curves whose answer is known ------------------------------------------------

LRS = np.logspace(-5, 1, 121)
X = np.log10(LRS)
# falls from 2.3 to 0.3 around lr 1e-2 (steepest there), bottoms out near lr 0.3, then rises
CURVE = 0.3 + 2.0 / (1 + np.exp(4 * (X + 2))) + 0.8 * np.maximum(X + 0.5, 0) ** 2


def test_rules_on_a_known_curve():
    i_min = int(np.argmin(CURVE))
    assert rule_steepest(LRS, CURVE) == pytest.approx(1e-2, rel=0.15)
    assert rule_min_div_10(LRS, CURVE) == pytest.approx(LRS[i_min] / 10)
    smith = rule_smith(LRS, CURVE)
    assert rule_steepest(LRS, CURVE) < smith < LRS[i_min]
    valley = rule_valley(LRS, CURVE)
    assert LRS[0] < valley < LRS[i_min]


def test_no_rule_reads_the_sweeps_first_points():
    # a smoothed curve's first steps move for reasons the LR does not give (an average of a
    # few values); the peers' own suggestions leave them unread, and so do ours: read, this
    # dip would be every rule's minimum and steepest fall
    start = skipped(len(LRS))
    curve = CURVE.copy()
    curve[start - 1] -= 5.0  # a dip below the curve's minimum, in the unread part only
    for rule in (rule_smith, rule_steepest, rule_min_div_10, rule_valley):
        assert rule(LRS, curve) == rule(LRS, CURVE) > LRS[start], rule.__name__


def test_rules_give_nothing_when_the_loss_never_decreases():
    rising = np.linspace(1.0, 3.0, 50)
    lrs = np.logspace(-5, 1, 50)
    assert rule_smith(lrs, rising) is None and rule_steepest(lrs, rising) is None


def test_smoothing_is_bias_corrected():
    assert smooth([2.0, 2.0, 2.0], 0.98).tolist() == pytest.approx([2.0, 2.0, 2.0])


def test_the_sweep_records_exactly_the_smoothing_it_is_read_through():
    model = digits_cnn()
    opt = build_optimizer("sgd", model)
    train, _ = digits_datasets()
    result = lr_range_test(model, opt, torch.nn.CrossEntropyLoss(), train, num_steps=40,
                           smoothing=0.9, diverge_factor=None, batch_size=64)
    run = result.runs[0]
    assert len(run.loss) == 40
    assert run.smoothed == smooth(run.loss, 0.9).tolist()  # the same floats, not approximately


# --- what a sweep shows: conclusive or not, and why ---------------------------------------------

def noisy(curve, sigma, seed=0):
    return curve + np.random.default_rng(seed).normal(0, sigma, len(curve))


def test_a_clear_fall_is_conclusive_and_anchored_at_the_lowest_loss():
    reading = read_sweep(LRS, CURVE, noise=0.01)
    assert reading.conclusive
    assert reading.anchor == pytest.approx(LRS[int(np.argmin(CURVE))])
    assert "falls" in reading.why


def test_a_curve_flat_within_noise_is_not_conclusive_and_says_why():
    # a plateau: noise of 0.02 around 1.1 until lr 0.3, then it rises
    plateau = np.where(LRS < 0.3, 1.1, 1.1 + 3 * np.log10(LRS / 0.3))
    reading = read_sweep(LRS, noisy(plateau, 0.02), noise=0.02)
    assert not reading.conclusive
    assert "within its noise" in reading.why and "no rule" in reading.why
    assert 0.3 <= reading.anchor <= 1.0  # where it starts to rise, not the sweep's end


def test_a_fall_in_the_sweeps_first_steps_does_not_count():
    # the first points fall steeply (start-up, not the LR), the rest is flat noise
    start_up = 1.0 + np.where(np.arange(len(LRS)) < 6, 0.5, 0.0)
    reading = read_sweep(LRS, noisy(start_up, 0.01), noise=0.01)
    assert not reading.conclusive
    assert rule_smith(LRS, noisy(start_up, 0.01)) is None or \
        rule_smith(LRS, noisy(start_up, 0.01)) > LRS[skipped(len(LRS))]


def test_a_real_sweep_on_digits_reads_as_conclusive_and_serialises_its_reading():
    result = lr_range_test(*setup()[:2], LOSS, DIGITS[0], batch_size=64, num_steps=80)
    reading = result.reading
    assert reading.conclusive and reading.drop > 3 * reading.noise > 0
    assert result.start_lr < reading.anchor < result.end_lr
    assert RangeTestResult.from_json(result.to_json()).reading == reading


def test_a_sweep_with_no_finite_loss_reads_as_inconclusive_and_says_what_to_check():
    nan = float("nan")
    curve = RangeCurve(lr=[1e-3, 1e-2, 1e-1], momentum=[None] * 3, loss=[nan] * 3,
                       smoothed=[nan] * 3, val_step=[], val_lr=[], val_loss=[], val_metric=[],
                       stop_reason="loss not finite", seed=0)
    result = RangeTestResult([curve], {}, "train", "exp", 1e-7, 10.0)
    assert not result.reading.conclusive
    assert "check the data and the loss" in result.reading.why


def test_a_result_saved_with_the_former_per_step_time_still_loads():
    result = lr_range_test(*setup()[:2], LOSS, DIGITS[0], batch_size=64, num_steps=30)
    saved = result.to_dict()
    saved["runs"][0]["step_seconds"] = 0.01
    assert RangeTestResult.from_dict(saved).runs == result.runs


def test_the_sweep_records_the_weight_decay_it_ran_at_and_older_files_still_load():
    torch.manual_seed(0)
    model = digits_cnn()
    decays = [p for p in model.parameters() if p.dim() > 1]
    exempt = [p for p in model.parameters() if p.dim() <= 1]  # biases, as frameworks do
    opt = torch.optim.SGD([{"params": decays, "weight_decay": 1e-2},
                           {"params": exempt, "weight_decay": 0.0}], lr=0.05, momentum=0.9)
    result = lr_range_test(model, opt, LOSS, DIGITS[0], batch_size=64, num_steps=30)
    assert result.weight_decay == 1e-2
    assert RangeTestResult.from_json(result.to_json()).weight_decay == 1e-2
    assert lr_range_test(*setup()[:2], LOSS, DIGITS[0], batch_size=64,
                         num_steps=30).weight_decay == 5e-4
    saved = result.to_dict()
    for run in saved["runs"]:
        del run["weight_decay"]  # as written before it was recorded
    assert RangeTestResult.from_dict(saved).weight_decay is None


@pytest.mark.parametrize("end_lr", [1.0, 1e4])  # a sweep that ends, one that diverges
def test_batched_reading_stops_where_reading_every_step_stops(monkeypatch, end_lr):
    results = []
    for every in (1, engine.SYNC_EVERY):
        monkeypatch.setattr(engine, "SYNC_EVERY", every)
        model, opt = setup()
        before = snapshot(model, opt)
        results.append(lr_range_test(model, opt, LOSS, DIGITS[0], val_data=DIGITS[1],
                                     start_lr=1e-3, end_lr=end_lr, num_steps=90,
                                     val_every=7, batch_size=64))
        assert_restored(before, model, opt)
    each_step, batched = (r.runs[0] for r in results)
    assert batched.stop_reason == each_step.stop_reason
    if end_lr > 1:  # stopped mid-way, most likely between two flushes
        assert batched.stop_reason.startswith("diverged") and len(batched.lr) < 90
    assert batched == each_step  # the same curve, point for point
