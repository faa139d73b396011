import os

import pytest
import torch
from hypothesis import settings

# CI machines are shared and slow at times: no per-example deadline; CI runs a fixed
# example sequence so a red build can be replayed exactly.
settings.register_profile("dev", deadline=None, max_examples=60)
settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=2000)
default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or default)

torch.set_num_threads(min(2, torch.get_num_threads()))


DIGITS_TASK_FILE = """
import torch
from sklearn.datasets import load_digits

def build_model():
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

def build_datasets():
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16
    y = torch.tensor(d.target)
    ds = torch.utils.data.TensorDataset
    return ds(x[:1400], y[:1400]), ds(x[1400:], y[1400:])

batch_size = 50
"""


@pytest.fixture
def digits_task_file(tmp_path):
    """A user's task file: an MLP on scikit-learn's digits, batch 50."""
    path = tmp_path / "my_digits.py"
    path.write_text(DIGITS_TASK_FILE)
    return path


@pytest.fixture
def few_digits_task_file(tmp_path):
    """The digits task on its first 60 training samples, with a wider hidden layer and batch
    10: at max LR 0.1 for 60 epochs its validation loss is lowest early in the cycle and
    creeps up after (measured: 0.872 at step 90 of 360, 0.882 at the end: overfitting)."""
    text = DIGITS_TASK_FILE
    for old, new in (("x[:1400], y[:1400]", "x[:60], y[:60]"),
                     ("Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32,",
                      "Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256,"),
                     ("batch_size = 50", "batch_size = 10")):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "few_digits.py"
    path.write_text(text)
    return str(path)


NOTHING_TO_LEARN = """
import torch

def build_model():
    return torch.nn.Linear(4, 10)

def build_datasets():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (2000,), generator=g)  # labels independent of the inputs
    x = torch.zeros(2000, 4)
    ds = torch.utils.data.TensorDataset
    return ds(x[:1600], y[:1600]), ds(x[1600:], y[1600:])
"""


@pytest.fixture
def nothing_task_file(tmp_path):
    """A task whose inputs say nothing about its labels: no LR makes it learn more than the
    label frequencies, so a range test's curve is flat."""
    path = tmp_path / "nothing.py"
    path.write_text(NOTHING_TO_LEARN)
    return path


@pytest.fixture(scope="session")
def ray_executor():
    """One local Ray instance for every Ray test (started on first use, stopped at the end):
    2 CPUs, no dashboard, a small object store, token auth and usage stats off. Skips, with
    Ray's reason, only where Ray is missing or cannot start on this machine."""
    try:
        import ray
    except ImportError:
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    from disciplined.executors import RayExecutor

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    executor = RayExecutor(cpus_per_trial=1, init_kwargs={
        "num_cpus": 2, "include_dashboard": False, "object_store_memory": 100 * 2**20})
    try:
        executor.start()
    except Exception as err:
        pytest.skip(f"Ray cannot start on this machine: {type(err).__name__}: {err}")
    yield executor
    ray.shutdown()


@pytest.fixture(scope="session")
def digits_study(tmp_path_factory):
    """One small tune on digits (final training of 4 epochs), shared by the tests that read a
    finished study: its folder and its StudyResult."""
    from disciplined import tune

    out = tmp_path_factory.mktemp("tune")
    return out, tune("digits", out=out, budget_epochs=4)
