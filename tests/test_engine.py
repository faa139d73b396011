"""The engine: real short trainings on digits, snapshots, accumulation, clipping, budgets."""

import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from disciplined import HyperScheduler, engine, tasks
from disciplined import schedules as S
from disciplined.engine import BatchStream, History, Trainer, build_optimizer, steps_per_epoch
from disciplined.plot import plot_history
from disciplined.tasks import TaskError, digits_cnn, digits_datasets

DATA = digits_datasets()


def make_trainer(*, lr=None, seed=0, batch_size=64, train=None, **kwargs):
    torch.manual_seed(seed)
    model = digits_cnn()
    opt = build_optimizer("sgd", model, lr=0.1, weight_decay=5e-4)
    scheduler = None if lr is None else HyperScheduler(
        opt, lr=lr, momentum=S.one_cycle_momentum(lr.total_steps) if lr.total_steps else None)
    return Trainer(model, opt, torch.nn.CrossEntropyLoss(), train or DATA[0], DATA[1],
                   batch_size=batch_size, seed=seed, scheduler=scheduler, **kwargs)


def test_one_cycle_training_on_digits_records_a_full_history():
    total = steps_per_epoch(DATA[0], 64) * 4
    trainer = make_trainer(lr=S.one_cycle(total, 0.3))
    assert trainer.steps_per_epoch * 4 == total
    h = trainer.run(epochs=4)
    assert len(h.step) == len(h.lr) == len(h.momentum) == len(h.train_loss) == total
    assert h.eval_step == [trainer.steps_per_epoch * k for k in (1, 2, 3, 4)]
    assert h.lr == [S.one_cycle(total, 0.3)(k) for k in range(total)]
    assert h.momentum[0] == 0.95
    assert h.val_metric[-1] > 0.95 and h.val_loss[-1] < h.val_loss[0]
    assert h.samples_per_second > 0 and h.wall_seconds > 0 and h.epochs == 4
    assert h.stop_reason == "budget"


def test_same_seed_same_numbers_and_another_seed_other_numbers():
    runs = [make_trainer(seed=s).run(steps=30).train_loss for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("on_disk", [False, True])
def test_snapshot_and_restore_continue_identically(tmp_path, on_disk):
    trainer = make_trainer(lr=S.one_cycle(60, 0.3), eval_every=10)
    trainer.run(steps=25)
    snap = trainer.snapshot(tmp_path / "snap.pt" if on_disk else None)
    trainer.run(steps=35)
    expected = [p.detach().clone() for p in trainer.model.parameters()]
    expected_history = trainer.history.to_json()

    fresh = make_trainer(lr=S.one_cycle(60, 0.3), eval_every=10, seed=0)
    fresh.restore(tmp_path / "snap.pt" if on_disk else snap)
    assert fresh.step == 25
    fresh.run(steps=35)
    assert all(torch.equal(a, b) for a, b in zip(expected, fresh.model.parameters(),
                                                 strict=True))
    # wall times differ between the runs; everything else matches
    a, b = History.from_json(expected_history), fresh.history
    assert (a.train_loss, a.lr, a.val_loss, a.eval_step) == \
        (b.train_loss, b.lr, b.val_loss, b.eval_step)


def test_gradient_accumulation_matches_the_larger_batch():
    big = make_trainer(batch_size=64)
    small = make_trainer(batch_size=32, accumulate=2)
    big.run(steps=1)
    small.run(steps=1)
    for a, b in zip(big.model.parameters(), small.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert small.steps_per_epoch == big.steps_per_epoch


def test_clipping_bounds_the_update():
    torch.manual_seed(0)
    model = digits_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    Trainer(model, opt, torch.nn.CrossEntropyLoss(), DATA[0], clip_grad_norm=1e-3).run(steps=1)
    after = torch.nn.utils.parameters_to_vector(model.parameters()).cpu()
    assert (after - before).norm() <= 1e-3 * (1 + 1e-5)


class PlainDataset(Dataset):
    """Not a TensorDataset: goes through a DataLoader."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.base[i]


def test_datasets_and_dataloaders_train_too():
    h = make_trainer(train=PlainDataset(DATA[0])).run(epochs=2)
    assert h.val_metric[-1] > 0.8
    loader = DataLoader(DATA[0], batch_size=50, shuffle=True)
    trainer = make_trainer(train=loader)
    assert trainer.steps_per_epoch == len(loader)
    assert trainer.run(epochs=1).val_metric[-1] > 0.5


def test_how_often_a_loaders_run_is_evaluated_does_not_change_its_training():
    # every iter() of a DataLoader draws from the global RNG: an evaluation on a loader
    # moved the shuffle of the training loader after it, so tune's trials (evaluated 12
    # times) and `disciplined train` (once an epoch) trained differently at one spec
    def trained(every):
        torch.manual_seed(0)
        train = DataLoader(DATA[0], batch_size=50, shuffle=True)
        val = DataLoader(DATA[1], batch_size=100)
        trainer = make_trainer(train=train)
        trainer.val_data, trainer.eval_every = val, every
        trainer.run(epochs=2)
        return [p.detach().clone() for p in trainer.model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(trained(5), trained(29), strict=True))


class Pair(torch.nn.Module):
    """A model that returns its scores with something else, as an RNN returns its state."""

    def __init__(self):
        super().__init__()
        self.net = digits_cnn()

    def forward(self, x):
        out = self.net(x)
        return out, {"norm": out.norm()}


def test_a_model_that_returns_a_tuple_is_evaluated_by_its_own_loss():
    # the library's own float() on the output failed, and the error blamed the user's model
    def loss(out, y):
        return torch.nn.functional.cross_entropy(out[0], y)

    torch.manual_seed(0)
    model = Pair()
    opt = build_optimizer("sgd", model, lr=0.1, weight_decay=5e-4)
    trainer = Trainer(model, opt, loss, DATA[0], DATA[1], batch_size=64, metric=None)
    h = trainer.run(epochs=1)
    assert h.val_metric == [None] * len(h.val_loss) and h.val_loss[-1] < 0.6 * math.log(10)
    trainer = Trainer(model, opt, loss, DATA[0], DATA[1], batch_size=64)  # accuracy
    with pytest.raises(TaskError, match='"accuracy" reads a tensor of class scores, and the '
                                        "model returns a tuple of 2: set metric = None"):
        trainer.run(steps=2)


def test_accuracy_from_one_logit_per_sample():
    # a (N, 1) logit against (N, 1) 0/1 targets: the sign decides (argmax over one column
    # said 0 for everyone, and broadcast against (N,) targets gave 10100%)
    out = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    y = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    assert tasks.correct_count(out, y) == (3, 4)
    assert tasks.accuracy_mismatch(torch.nn.BCEWithLogitsLoss(), out, y) == ""
    assert "set metric = None" in tasks.accuracy_mismatch(torch.nn.MSELoss(), out, y)
    assert tasks.correct_count(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == \
        (1, 2)
    logits_fn = torch.nn.functional.binary_cross_entropy_with_logits
    assert tasks.accuracy_mismatch(logits_fn, out, y) == ""
    # multi-label 0/1 targets are not class probabilities: not read as accuracy
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert tasks.accuracy_mismatch(torch.nn.BCEWithLogitsLoss(), torch.randn(2, 3), multi)
    assert tasks.accuracy_mismatch(torch.nn.CrossEntropyLoss(), torch.randn(2, 3), multi) == ""
    # scores per position count every position (it was correct positions over samples: up
    # to T x 100%)
    scores = torch.zeros(2, 5, 3)
    scores[0, 1, :] = 1.0  # sample 0 says class 1 at its 3 positions; sample 1 class 0
    labels = torch.tensor([[1, 1, 0], [0, 0, 0]])
    assert tasks.accuracy_mismatch(torch.nn.CrossEntropyLoss(), scores, labels) == ""
    assert tasks.correct_count(scores, labels) == (5, 6)


def test_batch_stream_resumes_mid_epoch_on_the_same_batches():
    stream = BatchStream(PlainDataset(DATA[0]), 100, seed=3)
    [stream.next() for _ in range(5)]
    state = stream.state()
    expected = [stream.next()[1] for _ in range(20)]
    again = BatchStream(PlainDataset(DATA[0]), 100, seed=3)
    again.load_state(state)
    assert all(torch.equal(a, again.next()[1]) for a in expected)


def test_a_wall_clock_budget_stops_the_run():
    h = make_trainer().run(seconds=0.3)
    assert h.stop_reason == "time" and len(h.step) > 0


def test_bf16_autocast_runs_and_fp16_needs_cuda():
    h = make_trainer(amp="bf16").run(steps=5)
    assert all(torch.isfinite(torch.tensor(h.train_loss)))
    with pytest.raises(ValueError, match="fp16"):
        make_trainer(amp="fp16", device="cpu")


def test_history_json_round_trip_and_plot(tmp_path):
    h = make_trainer().run(steps=10)
    assert History.from_json(h.to_json()) == h
    assert plot_history(h, tmp_path / "curves.png").stat().st_size > 0


def test_divergence_stops_the_run():
    trainer = make_trainer(lr=S.constant(1e6))
    h = trainer.run(steps=200)
    assert h.stop_reason == "diverged" and len(h.step) < 200


def _counting(monkeypatch, name):
    calls = []
    original = getattr(torch.Tensor, name)

    def counted(self, *args, **kwargs):
        calls.append(name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_the_loss_reaches_the_host_once_per_sync_every_steps(monkeypatch):
    trainer = make_trainer(lr=S.one_cycle(64, 0.1))
    trainer.val_data = None  # evaluations sync by nature; the training steps must not
    items, lists = _counting(monkeypatch, "item"), _counting(monkeypatch, "tolist")
    h = trainer.run(steps=64)
    assert items == []  # no per-step loss.item()
    assert len(lists) == 64 // engine.SYNC_EVERY  # one copy per SYNC_EVERY steps
    assert len(h.train_loss) == len(h.step) == 64


@pytest.mark.parametrize("max_lr", [0.1, 1e6])  # a run that trains, one that diverges
def test_batched_reading_records_what_reading_every_step_records(monkeypatch, max_lr):
    histories = []
    for every in (1, engine.SYNC_EVERY):
        monkeypatch.setattr(engine, "SYNC_EVERY", every)
        histories.append(make_trainer(lr=S.one_cycle(150, max_lr), eval_every=37).run(
            steps=150))
    each_step, batched = histories
    assert batched.stop_reason == each_step.stop_reason
    if max_lr > 1:  # diverged: the history ends at the first non-finite loss either way
        assert batched.stop_reason == "diverged" and len(batched.step) < 150
        assert not math.isfinite(batched.train_loss[-1])
    for field in ("step", "lr", "momentum", "train_loss", "eval_step", "val_loss",
                  "val_metric"):
        assert getattr(batched, field) == pytest.approx(getattr(each_step, field),
                                                        nan_ok=True), field


def test_amp_auto_is_bf16_only_on_a_gpu_that_has_it():
    assert engine.resolve_amp("auto", torch.device("cpu")) is None
    assert engine.resolve_amp("off", torch.device("cpu")) is None
    assert engine.resolve_amp("bf16", torch.device("cpu")) == "bf16"
    if torch.cuda.is_available():
        assert engine.resolve_amp("auto", torch.device("cuda")) == (
            "bf16" if torch.cuda.is_bf16_supported() else None)
    with pytest.raises(ValueError, match="amp must be None or one of"):
        make_trainer(amp="fp8")


def test_a_compiled_forward_trains_like_the_eager_one():
    # 20 steps stay inside the first epoch's full batches of 64: one compiled graph, not a
    # second one for the epoch's last, smaller batch (each costs CI about 10 s on 2 cores)
    eager = make_trainer(lr=S.one_cycle(20, 0.3)).run(steps=20)
    compiled = make_trainer(lr=S.one_cycle(20, 0.3), compile=True).run(steps=20)
    assert eager.val_loss[-1] < 0.5 * eager.train_loss[0]  # it did train
    assert compiled.train_loss[0] == pytest.approx(eager.train_loss[0], rel=1e-4)
    assert compiled.val_loss[-1] == pytest.approx(eager.val_loss[-1], rel=0.05)


class _Pairs(Dataset):
    """Real digits as a plain Dataset (not a TensorDataset), so its labels are read batch by
    batch as they train, with one label replaced from `at` on."""

    def __init__(self, data, at: int, label: int) -> None:
        self.x, self.y = data.tensors
        self.at, self.label = at, label

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.label if i >= self.at else int(self.y[i])


def _run(train, val, loss_fn=None, steps=40):
    torch.manual_seed(0)
    model = digits_cnn()
    trainer = Trainer(model, build_optimizer("sgd", model, lr=0.05),
                      loss_fn or torch.nn.CrossEntropyLoss(), train, val, batch_size=64,
                      eval_every=20)
    return trainer.run(steps=steps)


def test_a_label_out_of_range_in_a_later_batch_is_one_line_before_the_loss_reads_it():
    """On a GPU such a label is a device-side assert that leaves the process without its
    GPU (tests/test_cuda.py checks that there); the guard reads it on the host first."""
    train, val = DATA
    # samples from 600 on carry class 12 (the model scores 10): a batch of a shuffled epoch
    # meets one at once, so the first step says it, naming the step
    with pytest.raises(TaskError, match=r"^a training batch \(at training step 0\) "
                                               r"holds class 12, but the model scores 10 "
                                               r"classes \(0\.\.9\): fix the labels"):
        _run(_Pairs(train, 600, 12), val)
    # validation batches too, with the way to skip a label that marks "no class"
    with pytest.raises(TaskError, match=r"^the validation targets hold class -1 \(sample "
                                        r"300\), .*ignore_index=-1\)"):
        _run(train, _Pairs(val, 300, -1))
    # the loss's ignore_index is no class: those labels train as the loss skips them
    h = _run(_Pairs(train, 1200, -1), _Pairs(val, 300, -1),
             loss_fn=torch.nn.CrossEntropyLoss(ignore_index=-1))
    assert h.stop_reason == "budget" and math.isfinite(h.val_loss[-1])


def test_in_memory_labels_are_read_whole_once_at_the_first_step(monkeypatch):
    reads = []
    monkeypatch.setattr(tasks, "out_of_range",
                        lambda t, *a, f=tasks.out_of_range: reads.append(len(t)) or f(t, *a))
    _run(DATA[0], None, steps=30)
    assert reads == [len(DATA[0])]  # all 1437 labels at the first step, none after
    x, y = DATA[0].tensors
    bad = torch.utils.data.TensorDataset(x, torch.where(torch.arange(len(y)) == 1000, 10, y))
    with pytest.raises(TaskError, match=r"^the training targets hold class 10 "
                                               r"\(sample 1000\), but the model scores 10"):
        _run(bad, DATA[1])
    # an NLL loss reads class indices too
    with pytest.raises(TaskError, match=r"^the training targets hold class 10"):
        _run(bad, DATA[1], loss_fn=torch.nn.NLLLoss())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a device-side assert on a GPU: the "
                    "process would lose its GPU")
def test_a_loss_of_the_users_own_is_not_read_for_classes():
    """What the guard leaves alone fails in the loss as before, named by its batch."""
    x, y = DATA[0].tensors
    bad = torch.utils.data.TensorDataset(x, torch.where(torch.arange(len(y)) == 1000, 10, y))
    with pytest.raises(TaskError, match=r"failed on a batch at training step \d+ .*Target 10 "
                                        r"is out of bounds"):
        _run(bad, DATA[1], loss_fn=lambda out, t: torch.nn.functional.cross_entropy(out, t),
             steps=200)


class _TokenCrossEntropy(torch.nn.CrossEntropyLoss):
    """A cross entropy over every position of (B, T, V) scores against (B, T) tokens,
    flattened: how a language model keeps ignore_index and label smoothing."""

    def forward(self, scores, tokens):
        return super().forward(scores.flatten(0, 1), tokens.flatten())


def test_a_loss_that_flattens_its_scores_is_not_read_as_t_classes():
    # 6 positions, 20 tokens: read as (N, C, L) scores, the 6 positions would be 6 "classes"
    # and nearly every token out of range
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 20, (256, 6), generator=g)
    data = torch.utils.data.TensorDataset(tokens, (3 * tokens) % 20)  # learnable per token
    model = torch.nn.Sequential(torch.nn.Embedding(20, 16), torch.nn.Linear(16, 20))
    trainer = Trainer(model, build_optimizer("adamw", model, lr=1e-2), _TokenCrossEntropy(),
                      data, data, metric=None, batch_size=32)
    h = trainer.run(steps=40)
    assert h.stop_reason == "budget" and h.val_loss[-1] < h.val_loss[0]


def test_a_batchs_inputs_go_to_the_device_whatever_their_structure():
    # the meta device stands for a GPU: every tensor must land there, the structure kept
    from collections import namedtuple

    from torch.nn.utils.rnn import pack_sequence

    from disciplined.engine import to_device

    meta = torch.device("meta")
    pair = namedtuple("pair", "left right")
    t = torch.ones(2, 3)
    moved = to_device({"a": t, "b": [t, (t, "label")], "c": pair(t, t), "n": 3}, meta)
    assert moved["a"].device == meta and moved["b"][0].device == meta
    assert isinstance(moved["b"][1], tuple) and moved["b"][1][0].device == meta
    assert moved["b"][1][1] == "label" and moved["n"] == 3
    assert isinstance(moved["c"], pair) and moved["c"].right.device == meta
    # what moves itself is moved by its own .to (a PackedSequence keeps its sizes on the CPU)
    packed = to_device(pack_sequence([torch.ones(3, 2), torch.ones(2, 2)]), meta)
    assert packed.data.device == meta and packed.batch_sizes.device.type == "cpu"
