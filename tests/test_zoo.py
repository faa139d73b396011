"""The zoo: every task file loads, its data and model fit together, and a few steps train it."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from disciplined import trials, zoo
from disciplined.tasks import TaskError, load_task

FASHION_FILE = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
NEEDS_FASHION = {"fashion_bn_small"}
# MNIST-1D takes ~2 s to generate; test_tasks checks that its generator is deterministic
SLOW_DATA = {"mnist1d_cnn", "gru_mnist1d"}


def load(name):
    if name in NEEDS_FASHION and not FASHION_FILE.exists():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    return load_task(str(zoo.path(name)))


@pytest.mark.parametrize("name", zoo.names())
def test_a_zoo_task_loads_fits_its_model_and_trains(name):
    task = load(name)
    entry = next(t for t in zoo.ZOO if t.name == name)
    assert task.optimizer == entry.optimizer
    assert isinstance(task.epochs, int) and task.epochs > 0
    assert (task.metric == "accuracy") == (entry.kind == "classification"
                                           and isinstance(task.loss_fn, torch.nn.CrossEntropyLoss))

    rng_before = torch.random.get_rng_state()
    np_before = np.random.get_state()[1].copy()
    train, val = task.datasets()
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert np.array_equal(np.random.get_state()[1], np_before)
    for ds in (train, val):
        assert isinstance(ds, TensorDataset) and len(ds.tensors) == 2
        assert len(ds.tensors[0]) == len(ds.tensors[1]) > 0
    assert train.tensors[0].shape[1:] == val.tensors[0].shape[1:]
    assert len(train) >= task.batch_size
    if name not in SLOW_DATA:
        again, _ = load(name).datasets()  # a fresh module, so generated anew: the same data
        assert all(torch.equal(a, b) for a, b in zip(train.tensors, again.tensors, strict=True))

    model = task.model(seed=0)
    x, y = train.tensors[0][:16], train.tensors[1][:16]
    out = model(x)
    if task.metric == "accuracy":
        assert y.dtype == torch.long and y.shape == (16,)
        assert out.shape[0] == 16 and out.ndim == 2 and int(train.tensors[1].max()) < out.shape[1]
    elif entry.kind == "language-model":
        assert out.shape[:2] == y.shape and out.shape[2] > int(train.tensors[1].max())
    else:
        assert out.shape == y.shape and y.dtype == torch.float32  # no silent broadcasting

    # a few steps through the library's own trainer (as tune and train run it): finite
    # losses, and the weights moved
    spec = trials.TrialSpec(f"zoo/{name}", max_lr=1e-6, budget=trials.Budget(steps=3),
                            eval_samples=64)
    result, trained = trials.train(spec, task=task)
    assert result.state == "complete" and result.history.stop_reason == "budget"
    assert len(result.history.train_loss) == 3
    assert all(np.isfinite(result.history.train_loss)) and np.isfinite(result.val_loss)
    before = task.model(seed=0).state_dict()
    assert any(not torch.equal(before[k], v.cpu()) for k, v in trained.state_dict().items())


def test_the_zoo_lists_every_task_file_once_with_a_docstring_saying_what_it_covers():
    folder = Path(zoo.__file__).parent
    files = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}  # helpers
    assert sorted(zoo.names()) == sorted(files) and len(set(zoo.names())) == len(zoo.ZOO)
    assert len(zoo.ZOO) >= 12
    for name in zoo.names():
        doc = ast.get_docstring(ast.parse(zoo.path(name).read_text()))
        assert doc and "Covers:" in doc and "Data:" in doc, name


def test_the_dev_and_test_halves_each_cover_classification_and_regression():
    for split in ("dev", "test"):
        half = [t for t in zoo.ZOO if t.split == split]
        assert {"classification", "regression"} <= {t.kind for t in half}
        assert {"sgd", "adamw"} <= {t.optimizer for t in half}
        assert sum(t.name.startswith("transformer_") for t in half) >= 2
    assert {t.kind for t in zoo.ZOO} == {"classification", "multi-label", "regression",
                                         "language-model"}


def test_an_unknown_zoo_task_lists_the_names():
    with pytest.raises(ValueError, match="transformer_parity"):
        zoo.path("imagenet")


def test_listing_the_zoo_imports_no_torch():
    code = "import sys, disciplined.zoo as z; z.names(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_missing_fashion_mnist_says_how_to_install_it(tmp_path):
    task = load_task(str(zoo.path("fashion_bn_small")))
    task.build_datasets.__wrapped__.__globals__["DATA_DIR"] = tmp_path  # a fresh module's
    with pytest.raises(TaskError, match="apt-get install dataset-fashion-mnist"):
        task.datasets()


def test_zoo_tasks_are_named_zoo_slash_name_wherever_a_task_is_named():
    task = load_task("zoo/transformer_majority")
    assert task.name == "transformer_majority" and task.optimizer == "adamw"
    with pytest.raises(TaskError, match=r"unknown zoo task 'imagenet'.*tabular_mlp"):
        load_task("zoo/imagenet")


def test_the_zoo_command_lists_every_task_by_the_name_tune_takes():
    from typer.testing import CliRunner

    from disciplined.cli import app

    out = CliRunner().invoke(app, ["zoo"])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert [line.split()[0] for line in lines] == [f"zoo/{n}" for n in zoo.names()]
    assert "transformer encoder" in out.output
