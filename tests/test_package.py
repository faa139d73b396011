"""The package as a user meets it: the pure core imports without torch, `python -m
disciplined` and `--version` work. (The layers contract itself is `lint-imports`, run by
`make test`.)"""

import subprocess
import sys

import disciplined
from disciplined.decisions import Decision, Hyper


def run(*code_or_args, module=False):
    args = [sys.executable, "-m", "disciplined", *code_or_args] if module else \
        [sys.executable, "-c", code_or_args[0]]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_schedules_import_without_torch():
    done = run("import sys, disciplined.schedules, disciplined.policies, disciplined.decisions; "
               "print(sorted(m for m in sys.modules if m.split('.')[0] in "
               "('torch', 'matplotlib', 'numpy')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_top_level_names_load_on_first_use():
    done = run("import sys, disciplined; assert 'torch' not in sys.modules; "
               "disciplined.tune; assert 'torch' in sys.modules; "
               "from disciplined import HyperScheduler, TrialSpec, schedules; print('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert set(disciplined.__all__) == set(dir(disciplined))


def test_python_dash_m_and_version():
    done = run("--version", module=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"disciplined {disciplined.__version__}"
    assert "find-lr" in run("--help", module=True).stdout


def test_decisions_apply_only_what_they_set_and_round_trip():
    start = Hyper(batch_size=64)
    assert start.min_lr is None and start.momentum == (0.95, 0.85)
    decided = start.apply(Decision(max_lr=0.3)).apply(Decision(momentum=(0.9, 0.85)))
    assert decided == Hyper(batch_size=64, max_lr=0.3, momentum=(0.9, 0.85))
    assert decided.min_lr == 0.03
    assert Hyper.from_dict(decided.to_dict()) == decided
    both = Decision(weight_decay=1e-4, max_lr=0.5)
    assert Decision.from_dict(both.to_dict()) == both
    assert both.describe() == "max_lr 0.5, weight decay 0.0001"
    assert Decision().describe() == "" and Decision().to_dict() == {}
    # the schedule search's choice is not one the 1cycle recipe applies
    assert start.apply(Decision(policy="clr")) == start
