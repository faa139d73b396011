"""Lightning integration, with the real package on scikit-learn's digits: the callback trains
with our policy counted in optimizer steps, refuses a module's own scheduler, resumes from
a checkpoint exactly; the range test leaves the module, the RNGs and the disk as they were,
and reads one curve on every DDP rank."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from launch import torchrun  # noqa: E402
from lightning_digits import DigitsData, DigitsModule  # noqa: E402

from disciplined.errors import DisciplinedError  # noqa: E402
from disciplined.frameworks import sweep_scheduler  # noqa: E402
from disciplined.lightning import OneCycle, range_test  # noqa: E402
from disciplined.policies import policy_schedules  # noqa: E402

WORKER = Path(__file__).with_name("lightning_worker.py")


def trainer(tmp_path: Path, **kwargs: object) -> pl.Trainer:
    settings = {"max_epochs": 2, "logger": False, "enable_checkpointing": False,
                "enable_progress_bar": False, "enable_model_summary": False,
                "accelerator": "cpu", "default_root_dir": str(tmp_path)} | kwargs
    return pl.Trainer(**settings)


def test_range_test_leaves_module_rngs_and_disk_as_they_were(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = DigitsModule()
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    torch.manual_seed(123)
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    found = range_test(module, DigitsData(), accelerator="cpu")
    assert all(torch.equal(weights[k], v) for k, v in module.state_dict().items())
    assert torch.equal(rngs[0], torch.get_rng_state())
    assert np.array_equal(rngs[1], np.random.get_state()[1]) and rngs[2] == random.getstate()
    assert list(tmp_path.iterdir()) == []  # no lightning_logs, no checkpoint
    assert found.reading.conclusive, found.reading.why
    assert 1e-3 < found.max_lr < 10 and found.batch_size == 64 and found.world_size == 1
    run = found.runs[0]
    assert run.lr[0] == pytest.approx(1e-7) and run.momentum[0] == 0.95
    # the LR rose until the loss blew up (SGD on this MLP diverges near the sweep's end)
    assert 50 < len(run.loss) <= 100 and run.momentum[-1] < 0.87
    assert run.stop_reason.startswith("diverged") or len(run.loss) == 100
    # the seed fixes the data order: the same module reads the same curve twice
    twice = [range_test(module, DigitsData(), accelerator="cpu", num_steps=30).runs[0].loss
             for _ in range(2)]
    assert twice[0] == twice[1]
    # the weight decay it ran at: the module's own optimizer's, or the one it was given
    assert found.weight_decay == 0.0
    assert range_test(module, DigitsData(), accelerator="cpu", num_steps=10,
                      weight_decay=1e-3).weight_decay == 1e-3


def test_the_sweep_keeps_param_group_ratios():
    model = DigitsModule()
    opt = torch.optim.SGD([{"params": model.body.parameters(), "lr": 0.01},
                           {"params": model.head.parameters(), "lr": 0.1}], momentum=0.9)
    scheduler, record = sweep_scheduler(opt, start_lr=1e-4, end_lr=1.0, num_steps=10)
    for _ in range(5):
        scheduler.step()
    body, head = scheduler.get_last_lr()
    assert body == pytest.approx(head / 10) and head == pytest.approx(record.sweep(5))


@pytest.mark.parametrize("adam", [False, True])
def test_one_cycle_runs_the_policy_in_optimizer_steps(tmp_path, adam):
    module, callback = DigitsModule(adam=adam, body_lr=0.1), OneCycle(max_lr=0.2)
    fit = trainer(tmp_path, callbacks=[callback], accumulate_grad_batches=2, max_epochs=3)
    fit.fit(module, DigitsData())
    steps = fit.estimated_stepping_batches
    assert callback.scheduler is not None and callback.scheduler.last_step == steps == 36
    lr, momentum = policy_schedules("one-cycle", steps, 0.2)
    # 23 batches an epoch, two per optimizer step: 12 steps an epoch, the last of one batch
    assert len(module.seen_lr) == 69
    seen = {}
    for batch, lrs in enumerate(module.seen_lr):
        epoch, i = divmod(batch, 23)
        seen.setdefault(epoch * 12 + i // 2, lrs)
    assert sorted(seen) == list(range(steps))
    for step, (body, head) in seen.items():
        assert head == pytest.approx(lr(step)) and body == pytest.approx(lr(step) / 10)
    assert module.seen_momentum[0] == pytest.approx(momentum(0)) == 0.95


def test_a_modules_own_scheduler_is_refused_or_replaced(tmp_path):
    with pytest.raises(DisciplinedError, match=r"returns a scheduler \(StepLR\) and OneCycle "
                                               r"would fight it.*replace=True"):
        trainer(tmp_path, callbacks=[OneCycle(max_lr=0.2)]).fit(
            DigitsModule(scheduler=True), DigitsData())
    module = DigitsModule(scheduler=True)
    trainer(tmp_path, callbacks=[OneCycle(max_lr=0.2, replace=True)]).fit(module, DigitsData())
    lr, _ = policy_schedules("one-cycle", 46, 0.2)
    assert [s[0] for s in module.seen_lr] == pytest.approx([lr(k) for k in range(46)])


class _StopAfterFirstEpoch(pl.Callback):
    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        trainer.should_stop = True


def test_a_resumed_fit_continues_the_schedule_exactly(tmp_path):
    whole = DigitsModule()
    trainer(tmp_path, callbacks=[OneCycle(max_lr=0.2)]).fit(whole, DigitsData())
    first = DigitsModule()
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path, callbacks=[OneCycle(max_lr=0.2), checkpoints, _StopAfterFirstEpoch()],
            enable_checkpointing=True).fit(first, DigitsData())
    last = tmp_path / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=False)["lr_schedulers"] == [{"step": 23}]
    rest = DigitsModule()
    trainer(tmp_path, callbacks=[OneCycle(max_lr=0.2)]).fit(rest, DigitsData(),
                                                             ckpt_path=str(last))
    assert first.seen_lr + rest.seen_lr == whole.seen_lr


def test_the_suggestion_trains_a_good_model(tmp_path):
    found = range_test(DigitsModule(), DigitsData(), accelerator="cpu")
    module = DigitsModule()
    fit = trainer(tmp_path, callbacks=[OneCycle(max_lr=found.max_lr)], max_epochs=4)
    fit.fit(module, DigitsData())
    accuracy = fit.validate(module, DigitsData(), verbose=False)[0]["val_acc"]
    assert accuracy > 0.93


def test_the_range_test_under_ddp_reads_one_curve_on_every_rank(tmp_path):
    torchrun(str(WORKER), str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["world_size"] == 2
    # 60 steps to lr 10, unless the loss diverged before the end
    assert ranks[0]["max_lr"] is not None and 40 < len(ranks[0]["loss"]) <= 60
    # torn down before Python finalizes, where a live gloo group can abort the process
    assert [(tmp_path / f"exit{r}.txt").read_text() for r in (0, 1)] == ["False", "False"]
