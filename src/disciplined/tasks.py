"""What to train: the built-in tasks (all offline) and the task-file protocol.

A task file is a Python file that defines `build_model()` and `build_datasets()` (returning
`(train_dataset, val_dataset)`), and optionally `loss_fn`, `metric`, `optimizer`, `batch_size`
and `epochs` (the final training's length when the user gives no budget). A task file may
instead define `TASK`, a task another framework trains (`disciplined.lightning.task(...)`,
`disciplined.hf.task(...)`): its `runner` trains the trials, runs the range tests and times
the steps, where our own engine would otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import gzip
import importlib.util
import struct
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate

from . import zoo
from .errors import DisciplinedError
from .zoo._mnist1d import generated_mnist1d

if TYPE_CHECKING:
    from .engine import History
    from .range_test import RangeTestResult
    from .trials import TrialSpec

DEFAULT_BATCH_SIZE = 128
ZOO_PREFIX = "zoo/"  # `zoo/transformer_parity` names a task file of disciplined.zoo
OptimizerKind = Literal["sgd", "adamw"]
OPTIMIZERS: tuple[OptimizerKind, ...] = get_args(OptimizerKind)
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
TASK_FILE_EXAMPLE = '''\
import torch

def build_model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

def build_datasets():
    x, y = torch.randn(512, 64), torch.randint(0, 10, (512,))
    ds = torch.utils.data.TensorDataset(x, y)
    return ds, ds

batch_size = 64            # optional, default 128
optimizer = "sgd"          # optional: "sgd" (default) or "adamw"
epochs = 10                # optional: the final training's length when no budget is given
'''


class TaskError(DisciplinedError):
    """A task that cannot be loaded: the message names the task and what to do."""


class Runner(Protocol):
    """What the recipe asks of our engine, asked of another framework instead: a task whose
    model, data and training loop belong to Lightning or the Hugging Face Trainer. Each call
    builds what it trains afresh, seeded by the spec, and leaves every RNG as it was."""

    @property
    def framework(self) -> str:
        """Its name in messages: "Lightning"."""

    @property
    def lr_needs_runs(self) -> bool:
        """Whether its range test's reading must be confirmed by short runs."""

    def batch_size(self) -> int:
        """The batch size the framework's data loading uses."""

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps in one pass over the training data."""

    def val_samples(self) -> int:
        """Samples in the validation data."""

    def train(self, spec: TrialSpec, *, device: str | None,
              progress: bool) -> tuple[History, nn.Module]:
        """Train `spec` from fresh weights; the history (losses per optimizer step and per
        evaluation, as our engine records them) and the trained model."""

    def range_test(self, *, weight_decay: float, momentum: tuple[float, float] | None,
                   seed: int, device: str | None, num_steps: int, start_lr: float,
                   end_lr: float, mode: Literal["exp", "linear"]) -> RangeTestResult:
        """The LR range test on the training loss."""

    def measure(self, spec: TrialSpec, *, steps: int, eval_samples: int,
                device: str | None) -> tuple[float, float, float]:
        """Seconds per training step, per validation sample and per trial's set-up."""


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything a run needs to know about what it trains (`runner`: the framework that
    trains it, when it is not our engine)."""

    name: str
    build_model: Callable[[], nn.Module]
    build_datasets: Callable[[], tuple[Dataset, Dataset]]
    loss_fn: nn.Module = dataclasses.field(default_factory=nn.CrossEntropyLoss)
    metric: str | None = "accuracy"
    optimizer: OptimizerKind = "sgd"
    batch_size: int = DEFAULT_BATCH_SIZE
    source: str = "built-in"
    # the final training's length (1cycle) when the user gives no budget; None: the recipe's
    epochs: float | None = None
    runner: Runner | None = None

    def engine_only(self, what: str) -> None:
        """Refuse, in words, what only our own engine can do on a framework's task."""
        if self.runner is not None:
            raise TaskError(f"{self.source}: {what} needs a task of our own protocol "
                            f"(build_model, build_datasets); on a {self.runner.framework} "
                            "task use tune, train or find-lr")

    def model(self, seed: int | None = None) -> nn.Module:
        """A fresh model; with `seed`, its initial weights are drawn from torch's RNG seeded
        so, and the caller's global RNG state is left as it was."""
        if seed is not None:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                return self.model()
        try:
            model = self.build_model()
        except Exception as err:
            raise TaskError(
                f"{self.source}: build_model() raised {type(err).__name__}: {err}") from err
        if not isinstance(model, nn.Module):
            raise TaskError(f"{self.source}: build_model() must return a torch.nn.Module, got "
                            f"{type(model).__name__}")
        return model

    def loaded(self) -> Task:
        """This task with its datasets built once, now, and one batch checked through the
        model and the loss: a caller that needs the data before training (to count steps)
        and the trainer after it then share one copy, and a mismatch is said before any
        work. A task whose training data is a DataLoader takes that loader's batch size (it
        is what trains); a framework's task reads it from the framework."""
        if self.runner is not None:
            return dataclasses.replace(self, batch_size=self.runner.batch_size())
        data = self.datasets()
        classes = self.check_batch(data[0])
        if classes is not None:
            for which, dataset in zip(("training", "validation"), data, strict=True):
                self.check_classes(dataset, which, classes)
        own = loader_batch(data[0], None, self.source, "")
        return dataclasses.replace(self, build_datasets=lambda: data,
                                   batch_size=own or self.batch_size)

    def datasets(self) -> tuple[Dataset, Dataset]:
        self.engine_only("training with our engine")
        try:
            out = self.build_datasets()
        except TaskError:
            raise
        except Exception as err:
            raise TaskError(
                f"{self.source}: build_datasets() raised {type(err).__name__}: {err}") from err
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise TaskError(f"{self.source}: build_datasets() must return (train_dataset, "
                            f"val_dataset), got {type(out).__name__}")
        for data, which in zip(out, ("training", "validation"), strict=True):
            self._check_dataset(data, which)
        return out[0], out[1]

    def _check_dataset(self, data: Any, which: str) -> None:
        """The protocol's shape of a dataset, said in the protocol's words: raw tensors and
        arrays index to rows, not (input, target) pairs, and fail later with torch's errors."""
        expect = ("build_datasets() must return two torch Datasets (or DataLoaders) whose "
                  "items are (input, target) pairs, e.g. TensorDataset(x, y)")
        if isinstance(data, DataLoader):
            return
        if isinstance(data, torch.Tensor | np.ndarray) or not (
                hasattr(data, "__len__") and hasattr(data, "__getitem__")):
            raise TaskError(f"{self.source}: {expect}; its {which} dataset is of type "
                            f"{type(data).__name__}")
        if len(data) == 0:
            raise TaskError(f"{self.source}: its {which} dataset is empty")
        item = data[0]
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise TaskError(f"{self.source}: {expect}; item 0 of its {which} dataset is "
                            f"a {_describe(item)}")

    def check_batch(self, train: Dataset) -> int | None:
        """Two training samples through a fresh model and the loss, before any training (or
        a file written): a shape or dtype mismatch is said here, with the shapes, instead of
        as torch's error after a range test. The global RNG is left as it was. Returns the
        number of classes the model scores when the loss reads class indices (a cross
        entropy or NLL loss on (N, C, ...) outputs and integer (N, ...) targets), else
        None."""
        if isinstance(train, DataLoader):
            inputs, targets = next(iter(train))
        else:
            first = min(2, len(train))  # type: ignore[arg-type]  # checked by datasets()
            inputs, targets = default_collate([train[i] for i in range(first)])
        batch = f"inputs {_describe(inputs)}, targets {_describe(targets)}"
        with torch.random.fork_rng(), torch.no_grad():
            model = self.model().eval()
            def failed(err: Exception) -> TaskError:
                return TaskError(f"{self.source}: the model and loss fail on a batch of the "
                                 f"training data ({batch}): {type(err).__name__}: {err}")

            try:
                out = model(inputs)
            except Exception as err:
                raise failed(err) from err
            wrong = _mismatch(self.loss_fn, out, targets)  # before torch's own error, if any
            if wrong:
                raise TaskError(f"{self.source}: {wrong} (a batch of the training data: "
                                f"{batch})")
            try:
                loss = self.loss_fn(out, targets)
            except Exception as err:
                raise failed(err) from err
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
            raise TaskError(f"{self.source}: loss_fn must return one number per batch (a "
                            f"mean), got {_describe(loss)} on a batch ({batch})")
        if self.metric == "accuracy" and (wrong := accuracy_mismatch(self.loss_fn, out,
                                                                     targets)):
            raise TaskError(f"{self.source}: {wrong} (a batch of the training data: {batch})")
        reads_classes = ClassGuard(self.loss_fn).reads and scores_classes(out, targets)
        return int(out.shape[1]) if reads_classes else None

    def check_classes(self, data: Dataset, which: str, classes: int) -> None:
        """Every class index of a TensorDataset's targets against the `classes` the model
        scores, once, before any training. On a GPU a target out of range is a device-side
        assert, raised at some later step, that leaves the process unable to use the GPU at
        all; here it is one line. A Subset of one (what random_split returns) is read
        through its indices; other datasets (a DataLoader, your own class) are read batch
        by batch as they train (`ClassGuard`)."""
        targets = _class_targets(data)
        if targets is None or targets.is_floating_point() or targets.is_complex():
            return
        found = out_of_range(targets, classes, getattr(self.loss_fn, "ignore_index", None))
        if found is not None:
            label, first = found
            sample = first // max(1, targets[0].numel())
            raise TaskError(f"{self.source}: {_held(which, label, sample)}"
                            + _classes_advice(label, classes, self.loss_fn))


# Losses that compare each output with the target in its place, as modules and as
# functions: outputs and targets of other shapes are broadcast against each other, with at
# most a warning, and the loss is then a number for the wrong question.
ELEMENTWISE_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss,
                      nn.BCEWithLogitsLoss)
ELEMENTWISE_FUNCTIONS = (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss,
                         F.binary_cross_entropy, F.binary_cross_entropy_with_logits)


def _cross_entropy(loss_fn: Any) -> bool:
    """Whether `loss_fn` is a cross entropy over class scores, as a module or a function."""
    return isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss) or \
        loss_fn in (F.cross_entropy, F.nll_loss)


def _mismatch(loss_fn: Any, out: Any, targets: Any) -> str:
    """What is wrong with a loss that runs on a batch but cannot mean anything there ('' if
    nothing is): a cross entropy over a single class, which is 0 whatever the model does,
    or an elementwise loss on outputs and targets of different shapes."""
    if not (isinstance(out, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return ""
    name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
    if _cross_entropy(loss_fn) and out.ndim >= 2 and out.shape[1] == 1:
        return (f"the model scores a single class (its output is {tuple(out.shape)}), and "
                f"{name} over one class is 0 whatever the model does (a cross entropy is "
                "the loss when the task file sets no loss_fn). For a regression, set "
                "loss_fn = torch.nn.MSELoss(); for a yes/no label, have the model score two "
                "classes, or use torch.nn.BCEWithLogitsLoss() with float targets")
    elementwise = isinstance(loss_fn, ELEMENTWISE_LOSSES) or loss_fn in ELEMENTWISE_FUNCTIONS
    if not elementwise or out.shape == targets.shape:
        return ""
    if not (targets.is_floating_point() or targets.is_complex()) and out.ndim == 2 \
            and targets.ndim == 1 and out.shape[1] > 1:
        fix = "the targets look like class labels: for those, set loss_fn = " \
            "torch.nn.CrossEntropyLoss()"
    elif out.ndim == targets.ndim + 1 and out.shape[-1] == 1:
        fix = "give the targets the output's shape (y.unsqueeze(-1) in build_datasets), " \
            "or end the model with .squeeze(-1)"
    elif targets.ndim == out.ndim + 1 and targets.shape[-1] == 1:
        fix = "give the targets the output's shape (y.squeeze(-1) in build_datasets)"
    else:
        fix = "have the model output one value per target, in the targets' shape"
    return (f"{name} compares the model's output {tuple(out.shape)} with targets of "
            f"another shape, {tuple(targets.shape)}: torch would broadcast them against each "
            f"other and compare every output with every target; {fix}")


def _soft(out: torch.Tensor, targets: Any) -> bool:
    """Whether `targets` are class probabilities for `out`'s scores (a cross entropy's
    soft labels: mixup, label smoothing), whose most likely class is the label."""
    return isinstance(targets, torch.Tensor) and targets.is_floating_point() and \
        targets.shape == out.shape


def _one_logit(out: torch.Tensor, targets: torch.Tensor) -> bool:
    """Whether `out` holds one score per sample for one 0/1 target per sample."""
    n = len(targets) if targets.ndim else 0
    return n > 0 and targets.numel() == n and out.numel() == n


def accuracy_mismatch(loss_fn: Any, out: Any, targets: Any) -> str:
    """Why metric = "accuracy" cannot be read from these outputs and targets ('' if it
    can): class scores (N, C, ...) against labels (N, ...) (scores per position count
    every position) or, for a cross entropy, against class probabilities (N, C); or, with
    BCEWithLogitsLoss, one logit per sample against 0/1 targets."""
    logits = isinstance(loss_fn, nn.BCEWithLogitsLoss) or \
        loss_fn is F.binary_cross_entropy_with_logits
    if isinstance(out, torch.Tensor) and out.ndim >= 2 and out.shape[1] > 1 and (
            scores_classes(out, targets) or (_cross_entropy(loss_fn) and out.ndim == 2 and
                                             _soft(out, targets))):
        return ""
    if isinstance(out, torch.Tensor) and isinstance(targets, torch.Tensor) and logits and \
            _one_logit(out, targets):
        return ""
    shapes = f"the model outputs {_describe(out)} and the targets are {_describe(targets)}"
    return ('metric = "accuracy" reads class scores (N, C, ...) against class labels '
            "(N, ...) or, with a cross entropy, class probabilities (N, C); or one logit per "
            f"sample against 0/1 targets with BCEWithLogitsLoss; {shapes}: set metric = None "
            "(the validation loss still decides)")


def correct_count(out: Any, targets: torch.Tensor) -> tuple[int, int]:
    """How many labels `out` gets right, and how many it was judged on, in one of the forms
    `accuracy_mismatch` allows: the highest class score at each sample (and position), or
    a logit's sign against a 0/1 target."""
    if not isinstance(out, torch.Tensor):
        raise TaskError(f'metric = "accuracy" reads a tensor of class scores, and the model '
                        f"returns a {_describe(out)}: set metric = None")
    if out.ndim >= 2 and out.shape[1] > 1:
        labels = targets.argmax(1) if _soft(out, targets) else targets
        return int((out.argmax(1) == labels).sum()), labels.numel()
    return int(((out.reshape(targets.shape) > 0) == (targets > 0.5)).sum()), targets.numel()


def constant_kind(loss_fn: Any) -> str | None:
    """Which constant prediction `ConstantBaseline` can score for `loss_fn` at its default
    options: "classes" (a cross entropy: the class frequencies), "squared" (a mean squared
    error: each target's mean), "binary" (a binary cross entropy with logits: each label's
    rate); None for any other loss, or one with class weights or label smoothing."""
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        plain = loss_fn.weight is None and loss_fn.label_smoothing == 0
        return "classes" if plain and loss_fn.reduction == "mean" else None
    if loss_fn is F.cross_entropy:
        return "classes"
    if isinstance(loss_fn, nn.MSELoss):
        return "squared" if loss_fn.reduction == "mean" else None
    if loss_fn is F.mse_loss:
        return "squared"
    if isinstance(loss_fn, nn.BCEWithLogitsLoss):
        plain = loss_fn.weight is None and loss_fn.pos_weight is None
        return "binary" if plain and loss_fn.reduction == "mean" else None
    return "binary" if loss_fn is F.binary_cross_entropy_with_logits else None


class ConstantBaseline:
    """The validation loss of the best constant prediction (`constant_kind`), gathered from
    the targets batch by batch as an evaluation reads them (`add`): the mark a run must
    clearly beat to have learned anything from its inputs. A model that learned only the
    targets' frequencies or mean reaches it from any starting loss, and a curve that fell
    to it looks like a balanced one. The value is what the targets' own frequencies or
    mean score, corrected for being fitted on the same targets (Miller-Madow for the
    entropies, n/(n-1) for the variance), so a small validation set does not set the mark
    below what the true constant would score. None where no constant can be read, or
    where it would score 0 (one class, constant targets): no run could beat that."""

    def __init__(self, loss_fn: Any) -> None:
        self.kind = constant_kind(loss_fn)
        self.ignored = getattr(loss_fn, "ignore_index", -100)
        self.sums: torch.Tensor | None = None  # per class, or per target position
        # ("squared") the squares per position, of the targets less the first batch's
        # mean: raw squares of targets far from 0 cancel to nothing in the variance
        self.squares: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None
        self.count = 0

    def add(self, out: Any, targets: Any) -> None:
        """One batch's targets (and the outputs, for their number of classes)."""
        if self.kind is None:
            return
        if not (isinstance(out, torch.Tensor) and isinstance(targets, torch.Tensor)):
            self.kind = None
            return
        y = targets.detach().to("cpu")
        if self.kind == "classes" and scores_classes(out, y):
            kept = y[y != self.ignored].long()
            sums = torch.bincount(kept.flatten(), minlength=out.shape[1])[:out.shape[1]]
            self._gather(sums.double(), None, kept.numel())
        elif self.kind == "classes" and out.ndim == 2 and _soft(out, y):
            self._gather(y.double().sum(0), None, len(y))
        elif self.kind != "classes" and y.is_floating_point() and y.ndim and y.shape == out.shape:
            y = y.double()
            if self.kind == "squared":
                if self.shift is None:
                    self.shift = y.mean(0)
                if self.shift.shape == y.shape[1:]:
                    y = y - self.shift
            self._gather(y.sum(0), (y * y).sum(0) if self.kind == "squared" else None, len(y))
        else:  # a form no constant is scored for here
            self.kind = None

    def _gather(self, sums: torch.Tensor, squares: torch.Tensor | None, count: int) -> None:
        if self.sums is not None and self.sums.shape != sums.shape:
            self.kind = None  # targets of changing shapes: no one constant
            return
        self.sums = sums if self.sums is None else self.sums + sums
        if squares is not None:
            self.squares = squares if self.squares is None else self.squares + squares
        self.count += count

    def loss(self, total: Callable[[list[float]], list[float]] = lambda v: v) -> float | None:
        """The constant's loss, or None where the loss or its targets are of no known form;
        `total` sums numbers over processes (`distributed.total`). Every process calls it
        alike: first they agree that each has a constant of one size (one whose share was
        empty, of no known form or of another shape speaks for all), then they sum."""
        size = 0 if self.kind is None or self.sums is None else self.sums.numel()
        bad, sizes, processes = total([0.0 if size else 1.0, float(size), 1.0])
        if bad > 0 or sizes != size * processes:
            return None
        assert self.sums is not None
        if self.kind == "squared":
            value = self._variance(total)
        else:
            flat = total([float(self.count), *self.sums.flatten().tolist()])
            n, sums = flat[0], torch.tensor(flat[1:], dtype=torch.float64)
            value = None if n < 2 else self._entropy(sums, n)
        return value if value is not None and value > 1e-12 else None

    def _entropy(self, sums: torch.Tensor, n: float) -> float:
        if self.kind == "binary":
            rate = (sums / n).clamp(1e-12, 1 - 1e-12)
            entropy = -(rate * rate.log() + (1 - rate) * (1 - rate).log())
            return float(entropy.mean()) + 1 / (2 * n)
        p = sums / sums.sum()
        seen = p > 0
        return float(-(p[seen] * p[seen].log()).sum()) + (int(seen.sum()) - 1) / (2 * n)

    def _variance(self, total: Callable[[list[float]], list[float]]) -> float | None:
        """Each position's variance over every process's targets, averaged: each process's
        spread about its own mean, and its mean's distance from the overall one (Chan et
        al.'s pairwise combination), so no large sum of squares is ever subtracted."""
        assert self.sums is not None and self.squares is not None and self.shift is not None
        n = float(self.count)
        mean = self.shift + self.sums / n
        spread = self.squares - self.sums * self.sums / n
        flat = total([n, *(n * mean).flatten().tolist(), *spread.flatten().tolist()])
        k = mean.numel()
        count = flat[0]
        overall = torch.tensor(flat[1:1 + k], dtype=torch.float64).reshape(mean.shape) / count
        between = total((n * (mean - overall) ** 2).flatten().tolist())
        m2 = torch.tensor(flat[1 + k:], dtype=torch.float64) + torch.tensor(between,
                                                                             dtype=torch.float64)
        return None if count < 2 else float((m2 / (count - 1)).clamp(min=0).mean())


def scores_classes(out: Any, targets: Any, whole: bool = False) -> bool:
    """Whether `out` scores classes that integer `targets` index, as a cross entropy reads
    them: (N, C, d1, ...) scores for (N, d1, ...) labels (with `whole`, the labels of a whole
    dataset, of any N). A loss that reshapes its inputs (tokens' (B, T, V) scores flattened
    against (B, T) labels) does not match, and is not read."""
    if not (isinstance(out, torch.Tensor) and out.ndim >= 2 and isinstance(targets, torch.Tensor)
            and not (targets.is_floating_point() or targets.is_complex())):
        return False
    rest = tuple(out.shape[2:])
    if whole:
        return targets.ndim == out.ndim - 1 and tuple(targets.shape[1:]) == rest
    return tuple(targets.shape) == (out.shape[0], *rest)


def out_of_range(targets: torch.Tensor, classes: int,
                 ignored: int | None) -> tuple[int, int] | None:
    """The first class label of `targets` outside 0..classes-1 and not `ignored` (a loss's
    ignore_index), with its place in the flattened tensor; None when all are in range. One
    reduction (the ignored labels counted as class 0) decides the usual case, padding
    included; the mask is built only when it does not."""
    if targets.numel() == 0:
        return None
    seen = targets if ignored is None else targets.masked_fill(targets == ignored, 0)
    low, high = torch.aminmax(seen)
    if int(low) >= 0 and int(high) < classes:
        return None
    bad = ((seen < 0) | (seen >= classes)).flatten()
    first = int(bad.to(torch.uint8).argmax())
    return int(targets.flatten()[first]), first


def _classes_advice(label: int, classes: int, loss_fn: Any) -> str:
    """The end of an out-of-range label's message: what the model scores, and what to do (for
    a negative label, while the loss skips only its default -100 or nothing, how to skip
    it instead)."""
    kind = type(loss_fn)
    name = f"nn.{kind.__name__}" if kind.__module__.startswith("torch.nn") else kind.__name__
    default = getattr(loss_fn, "ignore_index", None) in (None, -100)
    padding = f"; if {label} marks labels to skip, say loss_fn = " \
        f"{name}(ignore_index={label})" if label < 0 and default else ""
    return (f"but the model scores {classes} classes (0..{classes - 1}): fix the labels, or "
            f"the model's number of outputs{padding}")


class ClassGuard:
    """Class labels checked against the classes the model scores (its output's second
    dimension), for a cross-entropy or NLL loss, before the loss reads them. On a GPU a
    label out of range is a device-side assert at some later step, after which the process
    cannot use the GPU at all; checked first, it is one line, and on any device the same
    line. Labels are read where they are on the host (a loader's batch before the loss, a
    dataset's whole), which costs a reduction over a batch's labels and no wait for the
    device; labels a loader already put on a device are not read batch by batch, as that
    would wait for the device at every step. Under torchrun a bad label in one rank's batch
    stops that rank only, as the loss's own error would."""

    __slots__ = ("ignored", "loss_fn", "reads")

    def __init__(self, loss_fn: Any) -> None:
        self.loss_fn = loss_fn
        self.reads = isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss)
        self.ignored = getattr(loss_fn, "ignore_index", None) if self.reads else None

    def check(self, out: Any, targets: Any, which: str, at: str | None = None,
              samples: tuple[int, int] | None = None, on_device: bool = False) -> None:
        """Raise TaskError if `targets` hold a class `out` does not score: a batch's, said
        `at` a step, or, with `samples` (the first sample's number and the stride between
        samples), by the bad sample's number; with neither, a whole dataset's (read on the
        host, copied there once if it is on a device). A batch's targets already on a device
        are read only with `on_device` (where the caller waits for the device anyway)."""
        whole = at is None and samples is None
        if not (self.reads and scores_classes(out, targets, whole)):
            return
        if targets.device.type != "cpu":
            if not (whole or on_device):
                return
            targets = targets.cpu() if whole else targets
        classes = int(out.shape[1])
        found = out_of_range(targets, classes, self.ignored)
        if found is None:
            return
        label, first = found
        index = first // max(1, targets[0].numel())  # the sample within these targets
        if whole:
            held = _held(which, label, index)
        elif samples is not None:
            held = _held(which, label, samples[0] + samples[1] * index)
        else:
            held = f"a {which} batch ({at}) holds class {label}, "
        raise TaskError(held + _classes_advice(label, classes, self.loss_fn))


def _held(which: str, label: int, sample: int) -> str:
    """The start of the error for a dataset's sample holding a class the model does not
    score, one wording wherever it is found."""
    return f"the {which} targets hold class {label} (sample {sample}), "


def _class_targets(data: Dataset) -> torch.Tensor | None:
    """The targets of a TensorDataset of (input, target) pairs, through any Subsets of it, in
    the order the dataset gives them; None for any other dataset."""
    indices: torch.Tensor | None = None
    while isinstance(data, Subset):
        taken = torch.as_tensor(data.indices, dtype=torch.long)
        indices = taken if indices is None else taken[indices]
        data = data.dataset
    if not isinstance(data, TensorDataset) or len(data.tensors) != 2:
        return None
    return data.tensors[1] if indices is None else data.tensors[1][indices]


def batch_error(err: Exception, inputs: Any, targets: Any, where: str) -> TaskError:
    """What the trainer raises when the task's model or loss fails on a batch the one-batch
    check did not see (a target out of range in batch 7): the batch's shapes and, for class
    labels, their range, and the line of the user's code that raised, in one message; the
    original error stays chained for a library caller's traceback."""
    batch = f"inputs {_describe(inputs)}, targets {_describe(targets)}"
    if isinstance(targets, torch.Tensor) and targets.numel() and not (
            targets.is_floating_point() or targets.is_complex()):
        batch += f" with values {int(targets.min())}..{int(targets.max())}"
    origin = _user_frame(err)
    return TaskError(f"the model or loss failed on a batch at {where} ({batch}): "
                     f"{type(err).__name__}: {err}" + (f" [{origin}]" if origin else ""))


class blamed:
    """`with blamed(x, y, "training step", n):` around the task's model and loss: an error
    they raise becomes `batch_error`'s, except running out of memory, which stays itself
    (the batch-size search catches it), and a TaskError, which already says what is wrong.
    A class, not a generator: it wraps every step."""

    __slots__ = ("inputs", "step", "targets", "where")

    def __init__(self, inputs: Any, targets: Any, where: str, step: int | None = None) -> None:
        self.inputs, self.targets, self.where, self.step = inputs, targets, where, step

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: BaseException | None, trace: Any) -> Literal[False]:
        if not isinstance(err, Exception) or isinstance(err, MemoryError | TaskError |
                                                        torch.OutOfMemoryError):
            return False
        where = self.where if self.step is None else f"{self.where} {self.step}"
        raise batch_error(err, self.inputs, self.targets, where) from err


def _user_frame(err: BaseException) -> str:
    """'file.py:12 in loss' for the innermost frame of the traceback outside torch, this
    package and the standard library: the line a user's task file would fix; '' if none."""
    import sysconfig
    import traceback

    skip = tuple(str(Path(d).resolve()) for d in (
        Path(torch.__file__).parent, Path(__file__).parent, sysconfig.get_paths()["stdlib"]))
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(skip)]
    if not frames:
        return ""
    last = frames[-1]
    return f"raised at {last.filename}:{last.lineno} in {last.name}"


def _describe(value: Any) -> str:
    """A value's type and, for arrays, shape and dtype: what a protocol error shows."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, tuple | list):
        return f"{type(value).__name__} of {len(value)}"
    return f"{type(value).__name__}"


# --- built-in data ----------------------------------------------------------------------------


# The built-in datasets are made once per process and shared by every trial (generating
# MNIST-1D takes ~1 s, reading Fashion-MNIST about as long). Nothing in disciplined writes
# into them; a caller that wants to change the tensors should clone them first.
@functools.lru_cache(maxsize=8)
def digits_datasets(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's bundled 8x8 digits (no download), scaled to [0, 1], split 80/20."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = len(y) // 5
    return TensorDataset(x[order[n_val:]], y[order[n_val:]]), \
        TensorDataset(x[order[:n_val]], y[order[:n_val]])


def mnist1d_datasets() -> tuple[TensorDataset, TensorDataset]:
    """MNIST-1D generated locally by `mnist1d.data.make_dataset` (default arguments and seed:
    4000 train, 1000 test, length 40). Never downloads."""
    try:
        return generated_mnist1d()
    except ImportError as err:
        raise TaskError("the mnist1d task needs the mnist1d package: pip install mnist1d") from err


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not, as a numpy array."""
    path = Path(path)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise TaskError(f"{path} is not an IDX file (bad magic number)")
    dtypes: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
                              0x0E: ">f8"}
    code, ndim = raw[2], raw[3]
    if code not in dtypes:
        raise TaskError(f"{path}: unknown IDX data type 0x{code:02x}")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[code], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise TaskError(f"{path}: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


@functools.lru_cache(maxsize=2)
def fashion_mnist_datasets(data_dir: str | Path | None = None
                           ) -> tuple[TensorDataset, TensorDataset]:
    """Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist, or `data_dir`):
    60000 train, 10000 test, 28x28 scaled to [0, 1]."""
    root = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    names = {"x": "train-images-idx3-ubyte", "y": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    paths = {}
    for key, stem in names.items():
        found = [root / (stem + ext) for ext in (".gz", "") if (root / (stem + ext)).exists()]
        if not found:
            raise TaskError(
                f"Fashion-MNIST not found: no {stem}[.gz] in {root}. Install it with "
                f"`sudo apt-get install dataset-fashion-mnist` (files land in "
                f"{FASHION_MNIST_DIR}), or pass --data-dir with the four IDX files")
        paths[key] = found[0]

    def images(path: Path) -> torch.Tensor:
        return torch.tensor(read_idx(path), dtype=torch.float32).unsqueeze(1) / 255.0

    def labels(path: Path) -> torch.Tensor:
        return torch.tensor(read_idx(path), dtype=torch.long)

    return (TensorDataset(images(paths["x"]), labels(paths["y"])),
            TensorDataset(images(paths["x_test"]), labels(paths["y_test"])))


# --- built-in models --------------------------------------------------------------------------


def digits_cnn() -> nn.Module:
    """A small CNN for 8x8 digits: two 3x3 convolutions, one pooling, one linear layer."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


def mnist1d_cnn() -> nn.Module:
    """The MNIST-1D paper's CNN: three strided 1-D convolutions (25 channels), one linear."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(125, 10))


def mnist1d_mlp() -> nn.Module:
    """The MNIST-1D paper's MLP: 40 -> 100 -> 100 -> 10."""
    return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def caffe_lenet() -> nn.Module:
    """Caffe's LeNet: conv 20 5x5, max-pool, conv 50 5x5, max-pool, fc 500 (ReLU), fc 10."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Linear(500, 10))


def fashion_mlp() -> nn.Module:
    """A two-hidden-layer MLP for 28x28 images: 784 -> 500 -> 300 -> 10."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 300),
                         nn.ReLU(), nn.Linear(300, 10))


def builtin_tasks(data_dir: str | Path | None = None) -> dict[str, Task]:
    """Every built-in task by name; data are loaded only when a run asks for them. Each
    one's `epochs` is what it needs under 1cycle."""
    fashion = lambda: fashion_mnist_datasets(data_dir)  # noqa: E731
    return {
        "digits": Task("digits", digits_cnn, digits_datasets, batch_size=64, epochs=10),
        "mnist1d": Task("mnist1d", mnist1d_cnn, mnist1d_datasets, batch_size=100, epochs=30),
        "mnist1d-mlp": Task("mnist1d-mlp", mnist1d_mlp, mnist1d_datasets, batch_size=100,
                            epochs=30),
        "fashion-mnist": Task("fashion-mnist", caffe_lenet, fashion, batch_size=128,
                              epochs=4),
        "fashion-mnist-mlp": Task("fashion-mnist-mlp", fashion_mlp, fashion, batch_size=128,
                                  epochs=4),
    }


# --- task files -------------------------------------------------------------------------------


def load_task(name_or_path: str | Path, *, data_dir: str | Path | None = None) -> Task:
    """A built-in task by name, a zoo task as `zoo/NAME`, or a user's task file by path."""
    builtins = builtin_tasks(data_dir)
    if str(name_or_path) in builtins:
        return builtins[str(name_or_path)]
    if str(name_or_path).startswith(ZOO_PREFIX):
        try:
            return _task_from_file(zoo.path(str(name_or_path).removeprefix(ZOO_PREFIX)))
        except ValueError as err:
            raise TaskError(str(err)) from err
    path = Path(name_or_path)
    if path.suffix != ".py" or not path.exists():
        raise TaskError(
            f"unknown task {str(name_or_path)!r}: use a built-in task "
            f"({', '.join(builtins)}), a zoo task ({ZOO_PREFIX}NAME, NAME one of "
            f"{', '.join(zoo.names())}) or the path of a Python task file, for example:\n"
            f"{TASK_FILE_EXAMPLE}")
    return _task_from_file(path)


# The names a task file sets that the protocol reads (the rest are the file's own).
TASK_FILE_NAMES = ("build_model", "build_datasets", "loss_fn", "metric", "optimizer",
                   "batch_size", "epochs", "TASK")


def loader_batch(train: Any, asked: int | None, source: str, done: str) -> int | None:
    """The batch a task's own training DataLoader fixes (None: the task's data is batched
    by disciplined, at any batch size); a different batch asked for is refused, since the
    loader would train at its own while steps and speeds were said at the one asked.
    `done` says what the batch was asked for ("trained", "swept")."""
    own = train.batch_size if isinstance(train, DataLoader) else None
    if own is not None and asked is not None and asked != own:
        raise TaskError(f"{source}: its training DataLoader fixes the batch at {own}, so a "
                        f"batch of {asked} cannot be {done}: build the loader with "
                        f"batch_size={asked}, or return a Dataset from build_datasets() and "
                        "let disciplined batch it")
    return own


def _check_names(path: Path, module: types.ModuleType) -> None:
    """Refuse a name that looks like a misspelt setting (`optimiser`, `loss_func`): read
    as the file's own, it would leave the setting at its default without a word, and the
    task would train with SGD or a cross entropy it never asked for. Modules and classes
    are the file's own, as is any name that starts with an underscore, a name near a
    setting the file also sets (`build_dataset` beside `build_datasets`), and a function
    near one of the two the file must define (their absence is said already)."""
    names = vars(module)
    for name, value in names.items():
        if name.startswith("_") or name in TASK_FILE_NAMES or \
                isinstance(value, types.ModuleType | type):
            continue
        close = difflib.get_close_matches(name, TASK_FILE_NAMES, n=1, cutoff=0.85)
        if close and close[0] not in names and not (
                isinstance(value, types.FunctionType) and close[0].startswith("build_")):
            raise TaskError(f"{path}: sets {name!r}, which a task file does not read: did "
                            f"you mean {close[0]!r}? (Rename it; or, if it is your own, "
                            f"start its name with an underscore.)")


def _task_from_file(path: Path) -> Task:
    module_name = f"_disciplined_task_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so trials can pickle what the file defines
    # the file imports the modules beside it, as `python my_task.py` would (and may do so
    # in build_model, long after this import: the folder stays on the path); last on it, so
    # that a file beside it never hides the standard library or an installed package
    folder = path.resolve().parent
    if str(folder) not in sys.path and folder != Path(zoo.__file__).resolve().parent:
        sys.path.append(str(folder))
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise TaskError(f"{path}: importing the task file raised {type(err).__name__}: "
                        f"{err}") from err
    if hasattr(module, "TASK"):
        if not isinstance(module.TASK, Task):
            raise TaskError(f"{path}: TASK must be a task (disciplined.lightning.task(...) or "
                            f"disciplined.hf.task(...)), got {type(module.TASK).__name__}")
        return dataclasses.replace(module.TASK, name=path.stem, source=str(path))
    missing = [name for name in ("build_model", "build_datasets")
               if not callable(getattr(module, name, None))]
    if missing:
        # a function of the file's own spelt near a missing one is most likely it, misspelt
        own = [n for n, v in vars(module).items()
               if isinstance(v, types.FunctionType) and not n.startswith("_")]
        near = [f"{found[0]}() for {m}()" for m in missing
                if (found := difflib.get_close_matches(m, own, n=1, cutoff=0.8))]
        hint = f" (it defines {' and '.join(near)}: misspelt?)" if near else ""
        raise TaskError(
            f"{path}: a task file must define {' and '.join(f'{m}()' for m in missing)}"
            f"{hint}; for example:\n{TASK_FILE_EXAMPLE}")
    _check_names(path, module)
    loss_fn = getattr(module, "loss_fn", None) or nn.CrossEntropyLoss()
    if isinstance(loss_fn, type):
        raise TaskError(f"{path}: loss_fn is the class {loss_fn.__name__}, not a loss: "
                        f"make one, loss_fn = {loss_fn.__name__}()")
    if not callable(loss_fn):
        raise TaskError(f"{path}: loss_fn must be callable (e.g. torch.nn.CrossEntropyLoss())")
    default_metric = "accuracy" if isinstance(loss_fn, nn.CrossEntropyLoss) else None
    metric = getattr(module, "metric", default_metric)
    if metric not in ("accuracy", None):
        raise TaskError(f"{path}: metric must be \"accuracy\" or None, got {metric!r}")
    optimizer = getattr(module, "optimizer", "sgd")
    if optimizer not in OPTIMIZERS:
        raise TaskError(f"{path}: optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    batch_size = getattr(module, "batch_size", DEFAULT_BATCH_SIZE)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TaskError(f"{path}: batch_size must be a positive int, got {batch_size!r}")
    epochs = getattr(module, "epochs", None)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int | float)
                               or not epochs > 0):
        raise TaskError(f"{path}: epochs must be a positive number, got {epochs!r}")
    return Task(path.stem, module.build_model, module.build_datasets, loss_fn, metric,
                optimizer, batch_size, source=str(path), epochs=epochs)
