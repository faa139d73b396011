"""Hugging Face integration, with the real package on a tiny BERT built from a config (no
download): OneCycleTrainer runs our policy in optimizer steps and keeps the no-decay group
at 0, refuses a second schedule, resumes exactly; the range test leaves the RNGs and the
disk as they were and its suggestion trains where the Trainer's default LR does not."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from hf_tiny import Majority, model_init  # noqa: E402
from launch import torchrun  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from disciplined.errors import DisciplinedError  # noqa: E402
from disciplined.frameworks import policy_scheduler  # noqa: E402
from disciplined.hf import OneCycleTrainer, range_test  # noqa: E402
from disciplined.policies import policy_schedules  # noqa: E402

TRAIN, VAL = Majority(1000, 0), Majority(300, 1)


def arguments(out, **kwargs):
    settings = {"output_dir": str(out), "per_device_train_batch_size": 32,
                "num_train_epochs": 2, "report_to": "none", "disable_tqdm": True,
                "logging_strategy": "no", "save_strategy": "no", "eval_strategy": "no",
                "use_cpu": True} | kwargs
    return TrainingArguments(**settings)


class Seen(TrainerCallback):
    """Each optimizer step's param groups as the step begins: lr, beta1, weight decay."""

    def __init__(self):
        self.lr, self.beta1, self.wd = [], [], []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        groups = optimizer.param_groups
        self.lr.append([g["lr"] for g in groups])
        self.beta1.append(groups[0]["betas"][0])
        self.wd.append([g["weight_decay"] for g in groups])


def test_range_test_leaves_rngs_and_disk_as_they_were_and_its_lr_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(7)
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    found = range_test(model_init, TRAIN, arguments(tmp_path / "unused"))
    assert torch.equal(rngs[0], torch.get_rng_state())
    assert np.array_equal(rngs[1], np.random.get_state()[1]) and rngs[2] == random.getstate()
    assert list(tmp_path.iterdir()) == []  # its output_dir was a temporary one
    assert found.reading.conclusive, found.reading.why
    run = found.runs[0]
    assert run.momentum[0] == 0.95 and found.batch_size == 32
    scores = {}
    for name, lr in (("ours", found.max_lr), ("default", 5e-5)):
        trainer = OneCycleTrainer(model_init=model_init, train_dataset=TRAIN, eval_dataset=VAL,
                                  args=arguments(tmp_path / name, learning_rate=lr))
        trainer.train()
        scores[name] = trainer.evaluate()["eval_loss"]
    # 2 epochs: at 5e-5 the tiny BERT has not left ln 2; at the suggestion it has learned
    assert scores["default"] > 0.6 and scores["ours"] < 0.3, scores


def test_one_cycle_trainer_runs_the_policy_in_optimizer_steps(tmp_path):
    seen = Seen()
    trainer = OneCycleTrainer(model_init=model_init, train_dataset=TRAIN, callbacks=[seen],
                              args=arguments(tmp_path, learning_rate=3e-3, weight_decay=0.01,
                                             gradient_accumulation_steps=2))
    trainer.train()
    steps = trainer.state.max_steps
    assert steps == 32 and len(seen.lr) == steps  # ceil(32 batches / 2) x 2 epochs
    lr, beta1 = policy_schedules("one-cycle", steps, 3e-3)
    assert [g[0] for g in seen.lr] == pytest.approx([lr(k) for k in range(steps)])
    assert all(len(set(g)) == 1 for g in seen.lr)  # both groups at one LR, as configured
    assert seen.beta1 == pytest.approx([beta1(k) for k in range(steps)])
    # the Trainer's no-decay group (biases, LayerNorm) stays at 0
    assert all(w == [0.01, 0.0] for w in seen.wd)


def test_a_second_schedule_is_refused(tmp_path):
    model = model_init()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    with pytest.raises(DisciplinedError, match=r"got a scheduler \(StepLR\).*fight"):
        OneCycleTrainer(model=model, args=arguments(tmp_path), train_dataset=TRAIN,
                        optimizers=(opt, sched))
    with pytest.raises(DisciplinedError, match="warms up itself"):
        OneCycleTrainer(model=model, args=arguments(tmp_path, warmup_steps=10),
                        train_dataset=TRAIN)


def test_a_resumed_training_continues_the_schedule_exactly(tmp_path):
    def run(out, resume=None):
        seen = Seen()
        trainer = OneCycleTrainer(
            model_init=model_init, train_dataset=TRAIN, callbacks=[seen],
            args=arguments(out, learning_rate=3e-3, max_steps=40, save_strategy="steps",
                           save_steps=20))
        trainer.train(resume_from_checkpoint=resume)
        return seen.lr

    whole = run(tmp_path / "whole")
    saved = tmp_path / "whole" / "checkpoint-20"
    assert torch.load(saved / "scheduler.pt", weights_only=True) == {"step": 20}
    assert run(tmp_path / "resumed", resume=str(saved)) == whole[20:]


def test_the_plain_trainer_takes_our_scheduler_as_optimizers(tmp_path):
    model = model_init()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seen = Seen()
    trainer = Trainer(model=model, train_dataset=TRAIN, callbacks=[seen],
                      args=arguments(tmp_path, max_steps=20),
                      optimizers=(opt, policy_scheduler(opt, total_steps=20, max_lr=3e-3)))
    trainer.train()
    lr, _ = policy_schedules("one-cycle", 20, 3e-3)
    assert [g[0] for g in seen.lr] == pytest.approx([lr(k) for k in range(20)])


def test_the_range_test_under_torchrun_reads_one_curve_in_every_process(tmp_path):
    torchrun(str(Path(__file__).with_name("hf_worker.py")), str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["world_size"] == 2
    assert 20 < len(ranks[0]["loss"]) <= 40  # to lr 10 in 40 steps, unless it diverged first
    # torn down before Python finalizes, where a live gloo group can abort the process
    assert [(tmp_path / f"exit{r}.txt").read_text() for r in (0, 1)] == ["False", "False"]
