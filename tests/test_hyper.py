"""HyperScheduler: the values it writes into real optimizers, resume, and its refusals."""

import pytest
import torch

from disciplined import HyperScheduler
from disciplined import schedules as S
from disciplined.tasks import digits_cnn, digits_datasets

TOTAL = 40


def params(groups: int = 2) -> list[dict]:
    return [{"params": [torch.nn.Parameter(torch.randn(3))]} for _ in range(groups)]


OPTIMIZERS = {
    "sgd": lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, weight_decay=1e-4),
    "adamw": lambda g: torch.optim.AdamW(g, lr=0.1),
    "rmsprop": lambda g: torch.optim.RMSprop(g, lr=0.1, momentum=0.9),
    "nadam": lambda g: torch.optim.NAdam(g, lr=0.1),
}


def momentum_of(group: dict) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_groups_hold_the_scheduled_values_after_every_step(name):
    opt = OPTIMIZERS[name](params())
    lr = S.one_cycle(TOTAL, 0.5)
    mom = S.one_cycle_momentum(TOTAL)
    wd = S.cosine(1e-3, 1e-5, TOTAL)
    hs = HyperScheduler(opt, lr=lr, momentum=mom, weight_decay=wd)
    for k in range(TOTAL):
        for group in opt.param_groups:
            assert group["lr"] == lr(k)
            assert momentum_of(group) == mom(k)
            assert group["weight_decay"] == wd(k)
            if "betas" in group:
                assert group["betas"][1] == 0.999  # beta2 untouched
        assert hs.get_last_lr() == [lr(k)] * 2
        assert hs.get_last_momentum() == [mom(k)] * 2
        for group in opt.param_groups:
            group["params"][0].grad = torch.ones(3)
        opt.step()
        hs.step()
    assert hs.last_step == TOTAL


def test_per_group_lists_and_scales_give_discriminative_values():
    opt = torch.optim.SGD(params(3), lr=0.1, momentum=0.9, weight_decay=1e-4)
    base = S.one_cycle(TOTAL, 1.0)
    HyperScheduler(opt, lr=base, lr_scale=[0.01, 0.1, 1.0],
                   weight_decay=S.constant(5e-4), weight_decay_scale=[0.0, 1.0, 1.0])
    assert [g["lr"] for g in opt.param_groups] == [base(0) * 0.01, base(0) * 0.1, base(0)]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 5e-4, 5e-4]

    scheds = [S.constant(0.1), S.linear(0.2, 0.0, 10)]
    opt = torch.optim.SGD(params(2), lr=0.1, momentum=0.9)
    hs = HyperScheduler(opt, lr=scheds, momentum=[S.constant(0.9), S.constant(0.8)])
    for _ in range(5):
        hs.step()
    assert hs.get_last_lr() == [0.1, scheds[1](5)]
    assert hs.get_last_momentum() == [0.9, 0.8]


def test_tensor_learning_rates_are_filled_in_place():
    lr_tensor = torch.tensor(0.1)
    opt = torch.optim.Adam(params(1), lr=lr_tensor, foreach=False)
    hs = HyperScheduler(opt, lr=S.linear(0.5, 0.1, 5))
    assert opt.param_groups[0]["lr"] is lr_tensor and lr_tensor.item() == 0.5
    hs.step()
    assert lr_tensor.item() == pytest.approx(0.4)


def _train(model, opt, hs, data, steps, start):
    x, y = data.tensors
    for k in range(start, start + steps):
        idx = torch.arange(k * 32, k * 32 + 32) % len(y)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        hs.step()


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_state_dict_round_trip_mid_training_continues_bit_for_bit(name, tmp_path):
    data, _ = digits_datasets()
    total, cut = 60, 25

    def build():
        torch.manual_seed(0)
        model = digits_cnn()
        opt = OPTIMIZERS[name](model.parameters())
        hs = HyperScheduler(opt, lr=S.one_cycle(total, 0.05 if name == "adamw" else 0.3),
                            momentum=S.one_cycle_momentum(total))
        return model, opt, hs

    model, opt, hs = build()
    _train(model, opt, hs, data, total, 0)
    uninterrupted = [p.detach().clone() for p in model.parameters()]

    model, opt, hs = build()
    _train(model, opt, hs, data, cut, 0)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "hs": hs.state_dict()},
               path)
    assert hs.state_dict() == {"step": cut}

    model, opt, hs = build()  # a fresh process would start here
    ckpt = torch.load(path)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["opt"])
    hs.load_state_dict(ckpt["hs"])
    _train(model, opt, hs, data, total - cut, cut)
    resumed = list(model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, resumed, strict=True))


def test_no_extra_keys_are_stored_in_param_groups():
    opt = torch.optim.SGD(params(1), lr=0.1, momentum=0.9)
    keys = set(opt.param_groups[0])
    HyperScheduler(opt, lr=S.one_cycle(10, 1.0), momentum=S.one_cycle_momentum(10)).step()
    assert set(opt.param_groups[0]) == keys


@pytest.mark.parametrize(
    ("build", "kwargs", "message"),
    [
        (lambda g: torch.optim.Adagrad(g), {"momentum": S.constant(0.9)},
         "Adagrad has no momentum to schedule"),
        (lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True),
         {"momentum": S.linear(0.9, 0.0, 10)}, "Nesterov momentum, which needs momentum > 0"),
        (lambda g: torch.optim.Adam(g), {"momentum": S.constant(1.0)},
         "beta1 and must stay below 1"),
        (lambda g: torch.optim.SGD(g, lr=0.1), {"lr": S.linear(0.1, -0.1, 10)},
         "lr schedule goes below 0"),
        (lambda g: torch.optim.SGD(g, lr=0.1), {"lr": [S.constant(0.1)]},
         "a list of 2 schedules"),
        (lambda g: torch.optim.SGD(g, lr=0.1),
         {"lr": S.constant(0.1), "lr_scale": [1.0, -1.0]}, "2 non-negative factors"),
        (lambda g: torch.optim.SGD(g, lr=0.1), {}, "at least one of lr, momentum"),
        (lambda g: torch.optim.RMSprop(g, lr=0.1), {"momentum": S.linear(0.0, 0.9, 10)},
         "RMSprop needs momentum > 0 at step 0"),
    ],
)
def test_bad_configurations_are_refused_with_a_clear_error(build, kwargs, message):
    opt = build(params())
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=message):
        HyperScheduler(opt, **kwargs)
    assert [dict(g) for g in opt.param_groups] == before  # nothing was touched


def test_not_an_optimizer_is_a_type_error():
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        HyperScheduler(object(), lr=S.constant(0.1))  # type: ignore[arg-type]


def test_load_state_dict_refuses_foreign_state():
    hs = HyperScheduler(torch.optim.SGD(params(1), lr=0.1), lr=S.constant(0.1))
    with pytest.raises(ValueError, match=r"HyperScheduler\.state_dict"):
        hs.load_state_dict({"last_epoch": 3})


def test_it_is_a_torch_scheduler_that_frameworks_can_step_save_and_resume():
    from torch.optim.lr_scheduler import LRScheduler

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1.0)
    sched = HyperScheduler(opt, lr=S.one_cycle(50, 0.1),
                           momentum=S.one_cycle_momentum(50))
    assert isinstance(sched, LRScheduler)
    assert "initial_lr" not in opt.param_groups[0]  # torch's bookkeeping is not written
    for _ in range(7):
        opt.step()
        sched.step()
    assert sched.last_epoch == 7 and sched.state_dict() == {"step": 7}
    assert sched.get_last_lr() == sched.get_lr() == [opt.param_groups[0]["lr"]]
    assert sched.get_last_lr()[0] == pytest.approx(S.one_cycle(50, 0.1)(7))
    fresh = HyperScheduler(torch.optim.AdamW(model.parameters(), lr=1.0),
                           lr=S.one_cycle(50, 0.1), momentum=S.one_cycle_momentum(50))
    fresh.load_state_dict(sched.state_dict())
    assert fresh.get_last_lr() == sched.get_last_lr()
    assert fresh.get_last_momentum() == sched.get_last_momentum()
    with pytest.raises(TypeError, match="takes no epoch"):
        sched.step(3)
