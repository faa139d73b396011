"""Oracle tests: where torch's schedulers share a definition, the values are the same floats."""

import warnings

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from disciplined import HyperScheduler, schedules

REL_TOL = 1e-9

lrs = st.floats(1e-5, 10.0)
# Subnormal values are left out: relative differences mean nothing below the normal range.
momenta = st.tuples(*[st.floats(0.0, 0.99, allow_subnormal=False)] * 2).map(sorted)


def torch_values(make, steps: int, adam: bool = False) -> tuple[list[float], list[float]]:
    """LR and momentum (or beta1) torch's scheduler sets for optimizer steps 0..steps-1."""
    param = torch.nn.Parameter(torch.zeros(1))
    if adam:
        opt: torch.optim.Optimizer = torch.optim.Adam([param], lr=1.0)
    else:
        opt = torch.optim.SGD([param], lr=1.0, momentum=0.9)
    sched = make(opt)
    group = opt.param_groups[0]
    lr, mom = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            lr.append(float(group["lr"]))
            mom.append(float(group["betas"][0] if adam else group["momentum"]))
            opt.step()
            sched.step()
    return lr, mom


def assert_same(ours: list[float], theirs: list[float], last_operand: float = 0.0) -> None:
    """Relative difference <= 1e-9 at every step.

    One allowance for a 1cycle: torch computes `(end - start) * pct + start`, which loses
    digits to cancellation when `end` is orders of magnitude below `start` (e.g. 4.5e-8
    after 9e-4), while we return the end value exactly at the last step and keep every value
    within its phase's ends. Their difference is bounded by a few ulps of the larger operand,
    which `last_operand` carries (found by hypothesis: torch gives 0.0 where the momentum
    ends at 1.6e-239 after 0.5).
    """
    assert len(ours) == len(theirs)
    eps = 2.0**-52
    slack = 4 * eps * last_operand
    for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        scale = max(abs(a), abs(b))
        assert abs(a - b) <= REL_TOL * scale + slack, f"step {k}: ours {a!r}, torch {b!r}"


@st.composite
def one_cycle_args(draw):
    three_phase = draw(st.booleans())
    total = draw(st.integers(3, 400))
    pct = draw(st.floats(0.01, 0.5 if three_phase else 0.99))
    assume(pct * total > 1)
    low, high = draw(momenta)
    return dict(
        total_steps=total,
        max_lr=draw(lrs),
        pct_start=pct,
        div_factor=draw(st.floats(1.0, 1e3)),
        final_div_factor=draw(st.floats(1.0, 1e5)),
        anneal=draw(st.sampled_from(["linear", "cos"])),
        three_phase=three_phase,
        max_momentum=high,
        base_momentum=low,
    )


@given(one_cycle_args(), st.booleans())
def test_one_cycle_equals_torch_onecyclelr_lr_and_momentum(args, adam):
    lr = schedules.one_cycle(
        args["total_steps"], args["max_lr"], pct_start=args["pct_start"],
        div_factor=args["div_factor"], final_div_factor=args["final_div_factor"],
        anneal=args["anneal"], three_phase=args["three_phase"])
    mom = schedules.one_cycle_momentum(
        args["total_steps"], max_momentum=args["max_momentum"],
        base_momentum=args["base_momentum"], pct_start=args["pct_start"],
        anneal=args["anneal"], three_phase=args["three_phase"])
    torch_lr, torch_mom = torch_values(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=args["max_lr"], total_steps=args["total_steps"],
            pct_start=args["pct_start"], anneal_strategy=args["anneal"],
            div_factor=args["div_factor"], final_div_factor=args["final_div_factor"],
            three_phase=args["three_phase"], max_momentum=args["max_momentum"],
            base_momentum=args["base_momentum"]),
        args["total_steps"], adam)
    assert_same(lr.values(), torch_lr, last_operand=args["max_lr"])
    assert_same(mom.values(), torch_mom, last_operand=args["max_momentum"])


@st.composite
def cyclic_args(draw):
    base, peak = sorted((draw(lrs), draw(lrs)))
    low, high = draw(momenta)
    return dict(
        base_lr=base, max_lr=peak, base_momentum=low, max_momentum=high,
        step_size_up=draw(st.integers(1, 50)),
        step_size_down=draw(st.one_of(st.none(), st.integers(1, 50))),
        mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        gamma=draw(st.floats(0.9, 1.0)),
    )


@given(cyclic_args(), st.booleans())
def test_cyclic_equals_torch_cycliclr_in_every_mode_with_momentum(args, adam):
    up, down, mode, gamma = (args["step_size_up"], args["step_size_down"], args["mode"],
                             args["gamma"])
    if mode == "triangular":
        lr = schedules.triangular(args["base_lr"], args["max_lr"], up, down)
    elif mode == "triangular2":
        lr = schedules.triangular2(args["base_lr"], args["max_lr"], up, down)
    else:
        lr = schedules.exp_range(args["base_lr"], args["max_lr"], up, down, gamma=gamma)
    mom = schedules.cyclic_momentum(args["base_momentum"], args["max_momentum"], up, down,
                                    mode=mode, gamma=gamma)
    steps = 4 * (up + (down or up)) + 3
    torch_lr, torch_mom = torch_values(
        lambda opt: torch.optim.lr_scheduler.CyclicLR(
            opt, base_lr=args["base_lr"], max_lr=args["max_lr"], step_size_up=up,
            step_size_down=down, mode=mode, gamma=gamma, cycle_momentum=True,
            base_momentum=args["base_momentum"], max_momentum=args["max_momentum"]),
        steps, adam)
    assert_same(lr.values(steps), torch_lr)
    assert_same(mom.values(steps), torch_mom)


@given(lrs, st.floats(0.0, 1.0), st.integers(1, 40), st.integers(1, 3))
def test_cosine_restarts_equals_torch_cosineannealingwarmrestarts(max_lr, frac, first, mult):
    min_lr = max_lr * frac
    sched = schedules.cosine_restarts(max_lr, min_lr, first, cycle_mult=mult)
    steps = first * (1 + mult + mult**2) + 5
    theirs, _ = torch_values(
        lambda opt: _with_lr(opt, max_lr, lambda o: torch.optim.lr_scheduler
                             .CosineAnnealingWarmRestarts(o, T_0=first, T_mult=mult,
                                                          eta_min=min_lr)),
        steps)
    assert_same(sched.values(steps), theirs)


@given(lrs, st.floats(0.05, 2.0), st.integers(1, 30))
def test_step_equals_torch_steplr(base_lr, gamma, step_size):
    steps = 6 * step_size + 2
    theirs, _ = torch_values(
        lambda opt: _with_lr(opt, base_lr, lambda o: torch.optim.lr_scheduler.StepLR(
            o, step_size=step_size, gamma=gamma)), steps)
    assert_same(schedules.step(base_lr, gamma, step_size).values(steps), theirs)


@given(lrs, st.floats(0.05, 2.0), st.lists(st.integers(1, 200), min_size=1, max_size=6))
def test_multistep_equals_torch_multisteplr(base_lr, gamma, milestones):
    steps = max(milestones) + 10
    theirs, _ = torch_values(
        lambda opt: _with_lr(opt, base_lr, lambda o: torch.optim.lr_scheduler.MultiStepLR(
            o, milestones=milestones, gamma=gamma)), steps)
    assert_same(schedules.multistep(base_lr, gamma, milestones).values(steps), theirs)


def _with_lr(opt, lr, make):
    for group in opt.param_groups:
        group["lr"] = lr
    return make(opt)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_hyperscheduler_sets_what_onecyclelr_sets_on_every_group(optimizer):
    def build():
        params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
        groups = [{"params": [p]} for p in params]
        if optimizer == "sgd":
            return torch.optim.SGD(groups, lr=0.1, momentum=0.9)
        return torch.optim.AdamW(groups, lr=0.1)

    total, max_lr = 150, 0.8
    ours, theirs = build(), build()
    hs = HyperScheduler(ours, lr=schedules.one_cycle(total, max_lr),
                        momentum=schedules.one_cycle_momentum(total))
    ref = torch.optim.lr_scheduler.OneCycleLR(
        theirs, max_lr=max_lr, total_steps=total, pct_start=0.45, div_factor=10.0,
        anneal_strategy="linear", three_phase=True)
    key = "momentum" if optimizer == "sgd" else "betas"
    for _ in range(total):
        for a, b in zip(ours.param_groups, theirs.param_groups, strict=True):
            assert a["lr"] == pytest.approx(b["lr"], rel=REL_TOL)
            assert a[key] == pytest.approx(b[key], rel=REL_TOL)
        assert hs.get_last_lr() == pytest.approx(ref.get_last_lr(), rel=REL_TOL)
        ours.step()
        theirs.step()
        hs.step()
        ref.step()
