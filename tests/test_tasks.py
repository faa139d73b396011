"""Tasks: built-in data and models, the IDX reader, and task files good and broken."""

import gzip
import struct
import threading

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import Subset, TensorDataset

from disciplined import tasks, tune
from disciplined.errors import DisciplinedError
from disciplined.range_test import task_range_test
from disciplined.tasks import (
    Task,
    TaskError,
    caffe_lenet,
    fashion_mnist_datasets,
    load_task,
    mnist1d_cnn,
    mnist1d_mlp,
    read_idx,
)
from disciplined.trials import Budget, TrialSpec, build_trainer, train
from disciplined.zoo._mnist1d import generated_mnist1d


def test_digits_is_bundled_and_split_80_20():
    train, val = load_task("digits").datasets()
    assert len(train) + len(val) == 1797 and len(val) == 359
    assert train.tensors[0].shape[1:] == (1, 8, 8)


def test_mnist1d_is_generated_locally_with_its_defaults_and_leaves_global_rngs_alone():
    before = np.random.get_state()[1].copy()
    train, val = generated_mnist1d.__wrapped__()  # generate anew, past the per-process cache
    assert np.array_equal(np.random.get_state()[1], before)
    cached, _ = load_task("mnist1d").datasets()
    assert torch.equal(cached.tensors[0], train.tensors[0])
    assert train.tensors[0].shape == (4000, 40) and val.tensors[0].shape == (1000, 40)
    assert set(train.tensors[1].tolist()) == set(range(10))
    again, _ = load_task("mnist1d-mlp").datasets()
    assert torch.equal(again.tensors[0], train.tensors[0])  # default seed: same data


@pytest.mark.parametrize(("model", "shape"), [(mnist1d_cnn, (5, 40)), (mnist1d_mlp, (5, 40)),
                                              (caffe_lenet, (5, 1, 28, 28))])
def test_builtin_models_map_inputs_to_ten_logits(model, shape):
    assert model()(torch.randn(shape)).shape == (5, 10)


def test_caffe_lenet_has_caffes_layers():
    convs = [m for m in caffe_lenet() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in caffe_lenet() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    assert [lin.out_features for lin in linears] == [500, 10]


def write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def test_idx_reader_reads_gzipped_and_plain_files(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint64).reshape(3, 28, 28) % 256
    write_idx(tmp_path / "a.gz", images)
    write_idx(tmp_path / "b", images, gz=False)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "b"), images)
    (tmp_path / "c").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(TaskError, match="not an IDX file"):
        read_idx(tmp_path / "c")


def test_fashion_mnist_reads_idx_files_from_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    train, val = fashion_mnist_datasets(tmp_path)
    assert train.tensors[0].shape == (6, 1, 28, 28) and len(val) == 4
    assert train.tensors[0].min() >= 0.0 and train.tensors[0].max() <= 1.0
    task = load_task("fashion-mnist", data_dir=tmp_path)
    assert len(task.datasets()[0]) == 6


def test_missing_fashion_mnist_says_how_to_install_it(tmp_path):
    with pytest.raises(TaskError, match="apt-get install dataset-fashion-mnist"):
        load_task("fashion-mnist", data_dir=tmp_path).datasets()


GOOD_TASK = """
import torch

def build_model():
    return torch.nn.Linear(4, 3)

def build_datasets():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    return torch.utils.data.TensorDataset(x, y), torch.utils.data.TensorDataset(x, y)

batch_size = 16
optimizer = "adamw"
"""


def test_a_task_file_is_loaded_with_its_options(tmp_path):
    path = tmp_path / "mytask.py"
    path.write_text(GOOD_TASK)
    task = load_task(str(path))
    assert (task.name, task.batch_size, task.optimizer, task.metric) == \
        ("mytask", 16, "adamw", "accuracy")
    assert isinstance(task.model(), torch.nn.Linear) and len(task.datasets()[0]) == 64


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import torch\n", r"must define build_model\(\) and build_datasets\(\)"),
        ("def build_model():\n    return 1\n", r"must define build_datasets\(\)"),
        ("def build_model(:\n", "importing the task file raised SyntaxError"),
        (GOOD_TASK + "optimizer = 'lbfgs'\n", "optimizer must be one of"),
        (GOOD_TASK + "batch_size = 0\n", "batch_size must be a positive int"),
        (GOOD_TASK + "metric = 'f1'\n", "metric must be"),
        # a misspelt setting would leave it at its default without a word (SGD, or a cross
        # entropy the task never asked for)
        (GOOD_TASK.replace('optimizer = "adamw"', 'optimiser = "adamw"'),
         "sets 'optimiser', which a task file does not read: did you mean 'optimizer'?"),
        (GOOD_TASK + "loss_func = torch.nn.MSELoss()\n", "did you mean 'loss_fn'?"),
        (GOOD_TASK + "epoch = 3\n", "did you mean 'epochs'?"),
        (GOOD_TASK + "loss_fn = torch.nn.MSELoss\n",
         r"loss_fn is the class MSELoss, not a loss: make one, loss_fn = MSELoss\(\)"),
    ],
)
def test_broken_task_files_name_the_file_and_what_is_missing(tmp_path, source, message):
    path = tmp_path / "broken.py"
    path.write_text(source)
    with pytest.raises(TaskError, match=message) as err:
        load_task(str(path))
    assert str(path) in str(err.value)


def test_a_task_files_own_names_are_its_own(tmp_path):
    # names near a setting's are refused only where they could be one: an imported class or
    # module, a name with a leading underscore, one beside the setting it is near, or a
    # function near build_datasets (whose absence is said already) is the file's own
    path = tmp_path / "own.py"
    path.write_text(GOOD_TASK + "from torch.optim import Optimizer\nimport math as optimizers\n"
                    "_epoch = 3\nlearning = 0.1\nval_batch_size = 64\nbatch_sizes = [1]\n"
                    "optimiser = 'adam'\ndef build_dataset():\n    return None\n")
    assert load_task(str(path)).optimizer == "adamw"


# GOOD_TASK (batch_size 16) whose training data is a DataLoader of batch 8
LOADER_TASK = GOOD_TASK.replace(
    "return torch.utils.data.TensorDataset(x, y), torch.utils.data.TensorDataset(x, y)",
    "data = torch.utils.data.TensorDataset(x, y)\n"
    "    return torch.utils.data.DataLoader(data, batch_size=8, shuffle=True), data")
assert LOADER_TASK != GOOD_TASK


def test_a_dataloaders_own_batch_is_the_tasks_and_another_is_refused(tmp_path):
    # the loader trains at its batch: reported at the task's (16) the steps and speeds
    # were said at a batch that never trained, and --batch-size changed nothing
    path = tmp_path / "loader.py"
    path.write_text(LOADER_TASK)
    assert load_task(str(path)).loaded().batch_size == 8
    trainer, steps = build_trainer(TrialSpec(str(path), max_lr=0.1, budget=Budget(epochs=1)))
    assert trainer.batch_size == 8
    assert steps == 8
    with pytest.raises(TaskError, match="its training DataLoader fixes the batch at 8, so a "
                                        "batch of 32 cannot be trained"):
        build_trainer(TrialSpec(str(path), max_lr=0.1, budget=Budget(epochs=1),
                                batch_size=32))
    with pytest.raises(TaskError, match="a batch of 32 cannot be swept"):
        task_range_test(load_task(str(path)), batch_size=32, num_steps=5)
    with pytest.raises(DisciplinedError, match=r"the batch_size stage cannot run on .*its "
                                               r"training DataLoader fixes the batch at 8"):
        tune(str(path), out=tmp_path / "out", stages=["batch_size", "final"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("loss", "outputs", "targets"), [
    ("torch.nn.MSELoss()", 1, "torch.randn(64, 1, generator=g)"),  # a regression
    ("torch.nn.BCELoss()", 1, "torch.rand(64, 1, generator=g).round()"),  # probabilities
])
def test_accuracy_where_nothing_says_what_is_right_is_refused(tmp_path, loss, outputs, targets):
    path = tmp_path / "acc.py"
    model = "torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Sigmoid())"
    path.write_text(f"""
import torch
def build_model():
    return {model}
def build_datasets():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), {targets}
    return torch.utils.data.TensorDataset(x, y), torch.utils.data.TensorDataset(x, y)
loss_fn = {loss}
metric = "accuracy"
""")
    with pytest.raises(TaskError, match='metric = "accuracy" reads class scores'):
        load_task(str(path)).loaded()


def test_task_functions_that_raise_or_return_nonsense_get_task_errors(tmp_path):
    path = tmp_path / "raises.py"
    path.write_text("def build_model():\n    raise RuntimeError('no GPU here')\n"
                    "def build_datasets():\n    return 5\n")
    task = load_task(str(path))
    with pytest.raises(TaskError, match=r"build_model\(\) raised RuntimeError: no GPU here"):
        task.model()
    with pytest.raises(TaskError, match=r"must return \(train_dataset, val_dataset\)"):
        task.datasets()


def test_unknown_task_lists_the_builtins_and_shows_an_example():
    with pytest.raises(TaskError, match="digits, mnist1d") as err:
        load_task("imagenet")
    assert "def build_model" in str(err.value)


def test_train_builds_a_task_files_datasets_once(tmp_path):
    from disciplined.jobs import train

    calls = tmp_path / "calls"
    path = tmp_path / "counted.py"
    path.write_text(GOOD_TASK.replace(
        "def build_datasets():\n",
        f"def build_datasets():\n    open({str(calls)!r}, 'a').write('x')\n"))
    job = train(str(path), max_lr=0.01, epochs=1, out=tmp_path / "out")
    assert job.result.state == "complete" and len(job.result.history.eval_step) == 1
    assert calls.read_text() == "x"  # counting the steps and training share one build


def _labelled(targets: torch.Tensor, loss_fn: torch.nn.Module) -> Task:
    x = torch.randn(len(targets), 4, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(x, targets)
    return Task("labels", lambda: torch.nn.Linear(4, 3), lambda: (data, data), loss_fn=loss_fn)


def test_class_labels_are_checked_whole_before_any_training():
    # the two samples the one-batch check sees are fine; sample 5 is not (on a GPU it would
    # be a device-side assert at some later step)
    targets = torch.tensor([0, 1, 2, 0, 1, 3, 2, 0])
    with pytest.raises(TaskError, match=r"training targets hold class 3 \(sample 5\), but "
                                        r"the model scores 3 classes \(0\.\.2\)"):
        _labelled(targets, torch.nn.CrossEntropyLoss()).loaded()
    # the loss's ignore_index is a label it skips, not a class
    ignored = torch.tensor([0, 1, 2, -100, 1, 2, 0, 1])
    _labelled(ignored, torch.nn.CrossEntropyLoss()).loaded()
    with pytest.raises(TaskError, match=r"class -1 .*ignore_index=-1\)"):
        _labelled(torch.where(ignored < 0, -1, ignored), torch.nn.CrossEntropyLoss()).loaded()
    # float targets are probabilities, not class indices: nothing to check, whatever values
    _labelled(torch.full((8, 3), 5.0), torch.nn.CrossEntropyLoss()).loaded()


def test_class_labels_are_checked_through_the_subsets_random_split_makes():
    targets = torch.tensor([0, 1, 2, 0, 1, 3, 2, 0, 1, 2])
    x = torch.randn(len(targets), 4, generator=torch.Generator().manual_seed(0))
    whole = TensorDataset(x, targets)
    # a Subset of a Subset: its sample 2 (past the one-batch check's two) is the whole's
    # sample 5, labelled 3
    inner = Subset(Subset(whole, [9, 5, 0, 1, 2, 3]), [2, 3, 1])
    task = Task("split", lambda: torch.nn.Linear(4, 3), lambda: (inner, inner))
    with pytest.raises(TaskError, match=r"class 3 \(sample 2\), but the model scores 3"):
        task.loaded()
    fine = Subset(Subset(whole, [9, 5, 0, 1, 2, 3]), [2, 3, 4])
    Task("split", lambda: torch.nn.Linear(4, 3), lambda: (fine, fine)).loaded()


def test_class_labels_of_a_sequence_are_checked_on_the_class_dimension():
    # (N, C, L) scores against (N, L) labels, as a per-position classifier gives them
    x = torch.randn(6, 4, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(6, 5, dtype=torch.long)
    labels[4, 2] = 3
    data = TensorDataset(x, labels)
    task = Task("positions", lambda: torch.nn.Conv1d(4, 3, 1), lambda: (data, data))
    with pytest.raises(TaskError, match=r"class 3 \(sample 4\), but the model scores 3"):
        task.loaded()
    labels[4, 2] = 2
    task.loaded()


# --- the constant prediction's loss ------------------------------------------------------------


def _fed(loss_fn, out, targets, batch=97):
    constant = tasks.ConstantBaseline(loss_fn)
    for i in range(0, len(targets), batch):
        constant.add(out[i:i + batch], targets[i:i + batch])
    return constant.loss()


@pytest.mark.parametrize("loss_fn", [torch.nn.CrossEntropyLoss(), F.cross_entropy])
def test_the_constant_for_class_labels_is_what_their_frequencies_score(loss_fn):
    y = torch.tensor([0] * 600 + [1] * 300 + [3] * 100)  # class 2 never seen
    frequencies = torch.bincount(y, minlength=4).double() / len(y)
    scores = frequencies.clamp(min=1e-30).log().float().expand(len(y), 4)
    oracle = float(F.cross_entropy(scores, y))
    got = _fed(loss_fn, torch.zeros(len(y), 4), y)
    # fitted on the labels it scores: raised by Miller-Madow's (classes seen - 1) / 2n
    assert got == pytest.approx(oracle + 2 / (2 * len(y)), rel=1e-6)


def test_the_constant_for_sequences_of_labels_skips_the_ignored_positions():
    torch.manual_seed(0)
    y = torch.randint(0, 3, (200, 7))
    y[:, 5:] = -100
    kept = y[y != -100]
    frequencies = torch.bincount(kept, minlength=3).double() / kept.numel()
    scores = frequencies.log().float().view(1, 3, 1).expand(200, 3, 7)
    oracle = float(F.cross_entropy(scores, y))
    got = _fed(torch.nn.CrossEntropyLoss(), torch.zeros(200, 3, 7), y)
    assert got == pytest.approx(oracle + 2 / (2 * kept.numel()), rel=1e-6)


def test_the_constant_for_a_regression_is_each_targets_mean():
    torch.manual_seed(0)
    y = torch.randn(500, 3) * torch.tensor([1.0, 2.0, 3.0]) + 5
    oracle = float(F.mse_loss(y.mean(0).expand_as(y), y))
    got = _fed(torch.nn.MSELoss(), y, y)
    assert got == pytest.approx(oracle * 500 / 499, rel=1e-5)  # the unbiased variance


def test_the_constant_for_binary_labels_is_each_labels_rate():
    torch.manual_seed(0)
    y = (torch.rand(400, 4) < torch.tensor([0.1, 0.5, 0.9, 0.3])).float()
    oracle = float(F.binary_cross_entropy_with_logits(torch.logit(y.mean(0)).expand_as(y), y))
    got = _fed(torch.nn.BCEWithLogitsLoss(), y, y)
    assert got == pytest.approx(oracle + 1 / 800, rel=1e-5)


@pytest.mark.parametrize("loss_fn", [
    torch.nn.CrossEntropyLoss(label_smoothing=0.1), torch.nn.CrossEntropyLoss(weight=torch.ones(4)),
    lambda out, y: F.cross_entropy(out, y)])
def test_no_constant_is_claimed_for_a_loss_of_another_form(loss_fn):
    labels = torch.randint(0, 4, (50,))
    assert _fed(torch.nn.CrossEntropyLoss(), torch.zeros(50, 4), labels) is not None
    assert _fed(loss_fn, torch.zeros(50, 4), labels) is None


@pytest.mark.parametrize("loss_fn", [torch.nn.L1Loss(), torch.nn.MSELoss(reduction="sum"),
                                     torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(3))])
def test_no_constant_is_claimed_for_an_elementwise_loss_of_another_form(loss_fn):
    y = torch.rand(50, 3)
    assert _fed(torch.nn.MSELoss(), y, y) is not None
    assert _fed(loss_fn, y, y) is None


def test_the_constant_for_soft_labels_is_their_mean_distribution():
    torch.manual_seed(0)
    y = torch.softmax(torch.randn(300, 5) * 2, dim=1)
    mean = y.mean(0)
    oracle = float(F.cross_entropy(mean.log().expand_as(y), y))
    got = _fed(torch.nn.CrossEntropyLoss(), torch.zeros(300, 5), y)
    assert got == pytest.approx(oracle + 4 / 600, rel=1e-5)


def test_no_constant_scores_zero():
    # one class, or constant targets: no run could beat the mark, so there is none
    one_class = torch.zeros(40, dtype=torch.long)
    assert _fed(torch.nn.CrossEntropyLoss(), torch.zeros(40, 3), one_class) is None
    assert _fed(torch.nn.MSELoss(), torch.zeros(40, 2), torch.full((40, 2), 7.0)) is None
    assert _fed(torch.nn.MSELoss(), torch.zeros(1, 2), torch.ones(1, 2)) is None  # one sample


def test_the_variance_of_targets_far_from_zero_keeps_its_digits():
    torch.manual_seed(0)
    y = torch.randn(1000, 2, dtype=torch.float64) + 1e9
    got = _fed(torch.nn.MSELoss(), y, y)
    assert got == pytest.approx(float(y.var(0).mean()), rel=1e-6)


def _in_two_processes(shares):
    """Each share's `loss`, with `distributed.total` played by two threads that add each
    other's numbers call by call, in lockstep, as an all-reduce does."""
    calls: list[list[list[float]]] = [[], []]
    results = [None, None]
    errors: list[Exception] = []
    barrier = threading.Barrier(2, timeout=10)

    def run(me):
        def total(values):
            calls[me].append(values)
            barrier.wait()
            other = calls[1 - me][len(calls[me]) - 1]
            barrier.wait()
            return [a + b for a, b in zip(values, other, strict=True)]  # sizes must agree
        try:
            results[me] = shares[me].loss(total)
        except Exception as err:  # a thread's error fails the test below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a process was left waiting"
    assert not errors, errors
    return results


def test_processes_sum_to_the_constant_of_all_their_targets():
    torch.manual_seed(0)
    y = torch.randn(400, 3) * 3 + torch.tensor([1.0, 50.0, -4.0])
    shares = [tasks.ConstantBaseline(torch.nn.MSELoss()) for _ in range(2)]
    shares[0].add(y[:250], y[:250])
    shares[1].add(y[250:], y[250:])
    got = _in_two_processes(shares)
    assert got[0] == got[1] == pytest.approx(_fed(torch.nn.MSELoss(), y, y), rel=1e-9)
    labels = torch.randint(0, 3, (400,))
    shares = [tasks.ConstantBaseline(torch.nn.CrossEntropyLoss()) for _ in range(2)]
    shares[0].add(torch.zeros(250, 3), labels[:250])
    shares[1].add(torch.zeros(150, 3), labels[250:])
    got = _in_two_processes(shares)
    assert got[0] == got[1] == pytest.approx(
        _fed(torch.nn.CrossEntropyLoss(), torch.zeros(400, 3), labels), rel=1e-9)


def test_processes_with_shares_of_other_shapes_or_none_claim_no_constant_and_wait_for_none():
    y = torch.randn(100, 3)
    for second in (y, None):  # another shape; an empty share
        shares = [tasks.ConstantBaseline(torch.nn.MSELoss()) for _ in range(2)]
        shares[0].add(y[:, :2], y[:, :2])
        if second is not None:
            shares[1].add(second, second)
        assert _in_two_processes(shares) == [None, None]


TWO_INPUTS_TASK = """
import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset

metric = "accuracy"
batch_size = 32


class TwoInputs(Dataset):
    # the image's two halves, each its own input, as {WRAP}
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        top, bottom = self.x[i, :32], self.x[i, 32:]
        return {PACK}, self.y[i]


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.top, self.bottom = torch.nn.Linear(32, 32), torch.nn.Linear(32, 32)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, inputs):
        top, bottom = {UNPACK}
        return self.head(torch.relu(torch.cat([self.top(top), self.bottom(bottom)], 1)))


def build_model():
    return Model()


def build_datasets():
    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16
    y = torch.tensor(bunch.target)
    return TwoInputs(x[:1400], y[:1400]), TwoInputs(x[1400:], y[1400:])
"""


@pytest.mark.parametrize("wrap, pack, unpack", [
    ("a dict", '{"top": top, "bottom": bottom}', 'inputs["top"], inputs["bottom"]'),
    ("a tuple", "(top, bottom)", "inputs"),
])
def test_a_model_of_two_inputs_is_swept_trained_and_evaluated(tmp_path, wrap, pack, unpack):
    # a DataLoader collates such samples into a dict (or a list) of batched tensors, which
    # go to the device as they are, each tensor moved
    path = tmp_path / "two_inputs.py"
    path.write_text(TWO_INPUTS_TASK.replace("{WRAP}", wrap).replace("{PACK}", pack)
                    .replace("{UNPACK}", unpack))
    task = load_task(str(path))
    swept = task_range_test(task, num_steps=30)
    assert len(swept.runs[0].loss) == 30
    spec = TrialSpec(str(path), max_lr=0.1, budget=Budget(epochs=3))
    result, _ = train(spec, task=task)
    assert result.state == "complete"
    assert result.val_metric is not None and result.val_metric > 0.8  # chance is 0.1


def test_a_task_file_imports_the_modules_beside_it(tmp_path):
    # as `python my_task.py` would; the import inside build_model runs long after loading
    (tmp_path / "my_layers_beside.py").write_text(
        "import torch\n\ndef head():\n    return torch.nn.Linear(4, 3)\n")
    path = tmp_path / "uses_beside.py"
    path.write_text(GOOD_TASK.replace(
        "    return torch.nn.Linear(4, 3)\n",
        "    import my_layers_beside\n    return my_layers_beside.head()\n"))
    assert isinstance(load_task(str(path)).model(0), torch.nn.Linear)
