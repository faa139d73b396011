"""Property tests for every schedule: bounds, exact endpoints, monotone phases, joins, dicts."""

import itertools
import json
import math
import pickle

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from disciplined import schedules as S

positive = st.floats(1e-6, 1e2)
finite = st.floats(-1e2, 1e2)
lengths = st.integers(2, 300)


def within(value: float, low: float, high: float) -> bool:
    slack = 1e-12 * max(abs(low), abs(high), 1e-300)
    return low - slack <= value <= high + slack


@st.composite
def cycle_shapes(draw):
    """What a 1cycle and its momentum share: length, warm-up fraction, anneal, phases."""
    three = draw(st.booleans())
    total = draw(lengths)
    pct = draw(st.floats(0.05, 0.5 if three else 0.95))
    assume(pct * total > 1)
    return {"total_steps": total, "pct_start": pct, "three_phase": three,
            "anneal": draw(st.sampled_from(["linear", "cos"]))}


@st.composite
def one_cycles(draw):
    return S.one_cycle(max_lr=draw(positive), div_factor=draw(st.floats(1.0, 100.0)),
                       final_div_factor=draw(st.floats(1.0, 1e4)), **draw(cycle_shapes()))


@st.composite
def one_cycle_momenta(draw):
    low, high = sorted((draw(st.floats(0, 0.99)), draw(st.floats(0, 0.99))))
    return S.one_cycle_momentum(max_momentum=high, base_momentum=low, **draw(cycle_shapes()))


cyclics = st.builds(
    S.Cyclic,
    base_lr=st.just(0.0) | positive, max_lr=st.floats(1e2, 1e3), step_size_up=st.integers(1, 30),
    step_size_down=st.none() | st.integers(1, 30),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.5, 1.0))

every_schedule = st.one_of(
    st.builds(S.constant, finite),
    st.builds(S.linear, finite, finite, lengths),
    st.builds(S.cosine, finite, finite, lengths),
    st.builds(S.exponential, positive, positive, lengths),
    st.builds(S.lr_range, st.floats(1e-8, 1e-3), st.floats(1e-2, 10.0), lengths,
              mode=st.sampled_from(["exp", "linear"])),
    one_cycles(),
    one_cycle_momenta(),
    cyclics,
    st.builds(S.cyclic_momentum, st.floats(0.5, 0.85), st.floats(0.86, 0.99),
              st.integers(1, 30), st.none() | st.integers(1, 30)),
    st.builds(S.cosine_restarts, st.floats(1.0, 2.0), st.floats(0.0, 1.0), st.integers(1, 30),
              st.integers(1, 3)),
    st.builds(S.step, positive, st.floats(0.1, 1.0), st.integers(1, 50)),
    st.builds(S.multistep, positive, st.floats(0.1, 1.0),
              st.lists(st.integers(1, 300), min_size=1, max_size=5)),
    st.builds(S.inv, positive, st.floats(0, 1e-2), st.floats(0, 2.0)),
    st.builds(S.mirror, one_cycles() | cyclics, st.floats(0.8, 0.85), st.floats(0.9, 0.99)),
)

# Schedules with no total_steps are checked over this many steps.
HORIZON = 400


def horizon(sched):
    return sched.total_steps or HORIZON


@given(every_schedule)
def test_values_stay_within_the_schedules_bounds(sched):
    low, high = sched.bounds()
    for k in range(horizon(sched) + 5):
        assert within(sched(k), low, high), (k, sched(k), low, high)


@given(every_schedule)
def test_dict_round_trip_through_json_and_pickle_gives_an_equal_schedule(sched):
    again = S.from_dict(json.loads(json.dumps(sched.to_dict())))
    assert again == sched
    assert pickle.loads(pickle.dumps(sched)) == sched
    assert [again(k) for k in range(0, horizon(sched), 7)] == \
        [sched(k) for k in range(0, horizon(sched), 7)]


@given(every_schedule)
def test_past_total_steps_a_schedule_holds_its_last_value(sched):
    if sched.total_steps is None:
        return
    last = sched(sched.total_steps - 1)
    assert sched(sched.total_steps) == last
    assert sched(sched.total_steps + 1000) == last


@given(every_schedule)
def test_negative_steps_are_refused(sched):
    with pytest.raises(ValueError, match="step must be >= 0"):
        sched(-1)


@pytest.mark.parametrize("make", [S.linear, S.cosine, S.exponential])
@given(start=positive, end=positive, total=lengths)
def test_interpolations_hit_both_endpoints_exactly(make, start, end, total):
    sched = make(start, end, total)
    assert sched(0) == start
    assert sched(total - 1) == end


@given(st.floats(1e-8, 1e-3), st.floats(1e-2, 10.0), lengths, st.sampled_from(["exp", "linear"]))
def test_lr_range_sweeps_up_monotonically_between_exact_endpoints(start, end, n, mode):
    sweep = S.lr_range(start, end, n, mode=mode)
    values = sweep.values()
    assert values[0] == start and values[-1] == end
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_lr_range_exp_mode_has_equal_ratios_between_steps():
    values = S.lr_range(1e-7, 10.0, 81).values()
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)
    assert ratios[0] == pytest.approx(10 ** (8 / 80), rel=1e-9)


def _phase_slices(sched):
    """Step ranges of each phase, from the phase ends torch uses."""
    ends = sched._ends
    starts = [0, *[math.floor(e) + 1 for e in ends[:-1]]]
    stops = [math.floor(e) + 1 for e in ends[:-1]] + [sched.total_steps]
    return [range(a, b) for a, b in zip(starts, stops, strict=True)]


@given(one_cycles())
def test_one_cycle_lr_rises_then_falls_phase_by_phase(sched):
    phases = _phase_slices(sched)
    rising = [sched(k) for k in phases[0]]
    assert rising[0] == sched.max_lr / sched.div_factor
    assert all(b >= a for a, b in itertools.pairwise(rising))
    falling = [sched(k) for r in phases[1:] for k in r]
    # the first value of phase 2 continues from phase 1's peak; all later values descend
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(falling))
    assert max(sched.values()) <= sched.max_lr
    assert sched(sched.total_steps - 1) == sched.min_lr


@given(one_cycle_momenta())
def test_one_cycle_momentum_mirrors_the_lr_and_is_flat_in_annihilation(sched):
    phases = _phase_slices(sched)
    down = [sched(k) for k in phases[0]]
    assert down[0] == sched.max_momentum
    assert all(b <= a for a, b in itertools.pairwise(down))
    up = [sched(k) for k in phases[1]]
    assert all(b >= a * (1 - 1e-12) for a, b in itertools.pairwise(up))
    if sched.three_phase:
        assert {sched(k) for k in phases[2]} == {sched.max_momentum}


def test_one_cycle_defaults_are_smiths():
    lr = S.one_cycle(1000, 1.0)
    mom = S.one_cycle_momentum(1000)
    assert (lr.anneal, lr.three_phase, lr.div_factor, lr.pct_start) == ("linear", True, 10.0, 0.45)
    assert lr(0) == pytest.approx(0.1) and max(lr.values()) == pytest.approx(1.0, rel=1e-3)
    assert lr(999) < 1e-4  # annihilation: orders of magnitude under the start
    assert mom(0) == 0.95 and min(mom.values()) == pytest.approx(0.85, abs=1e-3)
    assert mom(950) == 0.95


@given(cyclics)
def test_triangular_cycles_peak_once_per_cycle_and_return_to_base(sched):
    period = sched.cycle_steps
    for cycle in range(3):
        start = cycle * period
        assert sched(start) == pytest.approx(sched.base_lr, abs=1e-12 * sched.max_lr)
    if sched.mode == "triangular":
        assert sched(sched.step_size_up) == pytest.approx(sched.max_lr, rel=1e-12)


@given(st.floats(0.1, 2.0), st.integers(1, 30), st.integers(1, 3))
def test_cosine_restarts_restart_at_the_top_after_each_cycle(max_lr, first, mult):
    sched = S.cosine_restarts(max_lr, 0.0, first, cycle_mult=mult)
    restart, length = 0, first
    for _ in range(4):
        assert sched(restart) == max_lr
        assert sched(restart + length - 1) <= sched(restart)
        restart, length = restart + length, length * mult


@given(finite, finite, finite, st.integers(2, 100), st.integers(2, 100))
def test_join_of_matching_pieces_is_continuous_and_counts_local_steps(a, b, c, n, m):
    joined = S.join([S.linear(a, b, n), S.linear(b, c, m + 1)], [n - 1])
    assert joined(n - 2) == S.linear(a, b, n)(n - 2)
    assert joined(n - 1) == b  # the second piece starts at its own step 0
    assert joined.total_steps == n - 1 + m + 1
    assert joined(joined.total_steps - 1) == c


@given(st.floats(1e-3, 1.0), st.integers(1, 50), st.integers(2, 200))
def test_warmup_ramps_linearly_into_the_schedule_without_a_jump(peak, w, total):
    sched = S.cosine(peak, 0.0, total)
    warmed = S.warmup(sched, w)
    assert warmed(0) == 0.0
    assert warmed(w) == peak
    ramp = [warmed(k) for k in range(w + 1)]
    steps = [b - a for a, b in itertools.pairwise(ramp)]
    assert max(steps) == pytest.approx(min(steps), rel=1e-9)
    assert warmed(w + 5) == sched(5)
    assert warmed.total_steps == w + total


@given(one_cycles(), st.floats(0.5, 0.85), st.floats(0.86, 0.99))
def test_mirror_moves_against_the_lr_between_its_ends(lr, low, high):
    mom = S.mirror(lr, low, high)
    values = lr.values()
    assume(max(values) > min(values))
    pairs = sorted(zip(values, mom.values(), strict=True))
    assert all(m2 <= m1 * (1 + 1e-12) for (_, m1), (_, m2) in itertools.pairwise(pairs))
    assert mom.total_steps == lr.total_steps


def test_inv_is_caffes_formula():
    sched = S.inv(0.01, 1e-4, 0.75)
    for k in (0, 1, 100, 10_000, 100_000):
        assert sched(k) == pytest.approx(0.01 * (1 + 1e-4 * k) ** -0.75, rel=1e-15)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: S.one_cycle(100, 1.0, pct_start=0.7), r"pct_start must be in \(0, 0.5\]"),
        (lambda: S.one_cycle(100, 1.0, pct_start=1.0, three_phase=False),
         r"pct_start must be in \(0, 1\)"),
        (lambda: S.one_cycle(100, 1.0, pct_start=0.0), "pct_start must be > 0"),
        (lambda: S.one_cycle(1, 1.0), "total_steps must be an int >= 2, got 1"),
        (lambda: S.one_cycle(100, 0.0), "max_lr must be > 0"),
        (lambda: S.one_cycle(100, float("nan")), "max_lr must be finite"),
        (lambda: S.one_cycle(4, 1.0, pct_start=0.2), r"pct_start \* total_steps must be > 1"),
        (lambda: S.one_cycle(100, 1.0, anneal="cosine"), "anneal must be one of"),
        (lambda: S.one_cycle(100.0, 1.0), "total_steps must be an int"),
        (lambda: S.one_cycle_momentum(100, max_momentum=0.8, base_momentum=0.9),
         "base_momentum must be <= max_momentum"),
        (lambda: S.linear(0, 1, 1), "total_steps must be an int >= 2"),
        (lambda: S.exponential(0.0, 1.0, 10), "start must be > 0"),
        (lambda: S.lr_range(1.0, 0.1, 10), "end_lr must be > start_lr"),
        (lambda: S.lr_range(-1.0, 0.1, 10), "start_lr must be > 0"),
        (lambda: S.lr_range(1e-7, 10, 10, mode="log"), "mode must be one of"),
        (lambda: S.triangular(0.2, 0.1, 10), "base_lr must be <= max_lr"),
        (lambda: S.triangular(0.1, 0.2, 0), "step_size_up must be an int >= 1"),
        (lambda: S.exp_range(0.1, 0.2, 10, gamma=1.5), r"gamma must be in \(0, 1\]"),
        (lambda: S.cyclic_momentum(0.95, 0.85, 10), "base_momentum must be <= max_momentum"),
        (lambda: S.cosine_restarts(0.1, 0.2, 10), "min_lr must be <= max_lr"),
        (lambda: S.cosine_restarts(0.1, 0.0, 10, cycle_mult=0), "cycle_mult must be an int >= 1"),
        (lambda: S.step(0.1, 0.0, 10), "gamma must be > 0"),
        (lambda: S.multistep(0.1, 0.1, []), "milestones must hold at least one step"),
        (lambda: S.inv(0.1, -1.0, 0.75), "gamma must be >= 0"),
        (lambda: S.constant(float("inf")), "value must be finite"),
        (lambda: S.join([S.constant(1.0), S.constant(2.0)], []), "boundaries must hold one"),
        (lambda: S.join([S.constant(1.0)] * 3, [5, 5]), "strictly increasing"),
        (lambda: S.from_dict({"kind": "nope"}), "unknown schedule kind 'nope'"),
        (lambda: S.from_dict({"kind": "linear", "start": 0}), "bad fields for schedule kind"),
    ],
)
def test_invalid_arguments_raise_valueerror_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_values_needs_num_steps_for_endless_schedules():
    with pytest.raises(ValueError, match="pass num_steps"):
        S.triangular(0.1, 1.0, 10).values()
    assert len(S.triangular(0.1, 1.0, 10).values(25)) == 25
