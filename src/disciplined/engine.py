"""The one training loop every stage uses, its History, and full-state snapshots.

Read `Trainer.run` top to bottom: draw a batch, forward (under AMP if asked), backward,
accumulate, clip, step the optimizer, step the schedules, evaluate every `eval_every` steps.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from . import distributed
from .hyper import HyperScheduler, group_momentum
from .tasks import ClassGuard, ConstantBaseline, blamed, correct_count

Data = Dataset | DataLoader
StopReason = Literal["", "budget", "time", "diverged"]
EVAL_BATCH = 1024
# Steps between host syncs of the training loss: the divergence stop reads the losses this
# many steps late at most (the history still ends at the first non-finite one).
SYNC_EVERY = 16
AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else cuda, then mps, then cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_amp(amp: str | None, device: torch.device) -> str | None:
    """The autocast a run uses: "auto" is bf16 on a CUDA GPU that supports it (Ampere and
    later), else none; "off" (or None) is none; "bf16" and "fp16" are themselves."""
    if amp == "auto":
        cuda = device.type == "cuda" and torch.cuda.is_available()
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else None
    if amp in (None, "off"):
        return None
    return amp


def build_optimizer(kind: str, model: nn.Module, *, lr: float = 1e-3, momentum: float = 0.9,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD with momentum, or AdamW with beta1 = `momentum` (the task's choice)."""
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, betas=(momentum, 0.999),
                                 weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {kind!r}")


def to_device(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """A batch's inputs on `device`: a tensor, or anything with its own `.to` (a
    PackedSequence, a tokenizer's batch), as it moves itself; else the dicts, lists and
    tuples of them a DataLoader collates from samples whose inputs are such (a model with
    two inputs), each moved; anything else (a string, a number) as it is."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if callable(getattr(value, "to", None)):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(to_device(v, device, non_blocking) for v in value))
    if isinstance(value, list | tuple):
        return type(value)(to_device(v, device, non_blocking) for v in value)
    return value


def _tensors(data: Data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (inputs, targets) tensors of an in-memory dataset, else None."""
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    return None


def num_samples(data: Data) -> int:
    dataset = data.dataset if isinstance(data, DataLoader) else data
    return len(dataset)  # type: ignore[arg-type]


def batches_per_epoch(data: Data, batch_size: int) -> int:
    """Training batches in one epoch: a DataLoader's length, else every global batch of
    `batch_size x world size` samples, the last one kept if it gives each rank a sample."""
    if isinstance(data, DataLoader):
        return len(data)
    size = distributed.world().size
    full, rest = divmod(num_samples(data), batch_size * size)
    return full + (rest >= size)


def steps_per_epoch(data: Data, batch_size: int, accumulate: int = 1) -> int:
    """Optimizer steps in one epoch (each takes `accumulate` batches): the one formula the
    trainer, the trial factory and the recipe's budget plan all use."""
    return math.ceil(batches_per_epoch(data, batch_size) / accumulate)


class BatchStream:
    """Endless training batches, epoch after epoch, in an order fixed by `seed`.

    In-memory tensors are sliced by a per-epoch permutation (no DataLoader overhead); other
    datasets go through a DataLoader; a DataLoader given by the user is used as it is (under
    torchrun, give it a DistributedSampler). Under torchrun every rank draws the same global
    batches of `batch_size x world size` and trains on its own slice of each, so N ranks with
    batch B see exactly the samples one process with batch N x B sees.
    """

    def __init__(self, data: Data, batch_size: int, *, seed: int = 0,
                 device: torch.device | None = None) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.device = device or torch.device("cpu")
        # page-locked host batches make the copies to a GPU asynchronous (non_blocking)
        self._pin = self.device.type == "cuda"
        self.world = distributed.world()
        self._tensors = _tensors(data)
        # the targets as a ClassGuard reads them: in-memory ones whole (until one check has
        # read them), else the last loader batch's as the loader gave them (on the host)
        self._whole = self._tensors is not None
        self._targets: Any = None if self._tensors is None else self._tensors[1]
        if self._tensors is not None:
            self._tensors = (self._tensors[0].to(self.device), self._tensors[1].to(self.device))
        n = num_samples(data)
        if n == 0:
            raise ValueError("the training data is empty")
        self.global_batch = batch_size * self.world.size
        self.batches_per_epoch = batches_per_epoch(data, batch_size)
        if self.batches_per_epoch == 0:
            raise ValueError(f"the {n} training samples do not fill one batch of "
                             f"{batch_size} on each of {self.world.size} processes")
        self.epoch, self.position = 0, 0
        self._iter: Iterator[Any] | None = None
        self._order: torch.Tensor | None = None

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)

    def _slice(self, order: torch.Tensor, position: int) -> torch.Tensor:
        """This rank's part of global batch `position` (all of it with one process)."""
        batch = order[position * self.global_batch:(position + 1) * self.global_batch]
        if self.world.size == 1:
            return batch
        return torch.tensor_split(batch, self.world.size)[self.world.rank]

    def _start_epoch(self) -> None:
        if self._tensors is not None:
            order = torch.randperm(len(self._tensors[1]), generator=self._generator())
            self._order = order.to(self.device)
            return
        if isinstance(self.data, DataLoader):
            loader = self.data
        elif self.world.size == 1:
            loader = DataLoader(self.data, batch_size=self.batch_size, shuffle=True,
                                generator=self._generator(), pin_memory=self._pin)
        else:
            order = torch.randperm(num_samples(self.data), generator=self._generator())
            loader = DataLoader(self.data, batch_sampler=[
                self._slice(order, i).tolist() for i in range(self.batches_per_epoch)],
                pin_memory=self._pin)
        self._iter = iter(loader)
        for _ in range(self.position):  # resuming mid-epoch: skip what was seen
            next(self._iter)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
            self._order, self._iter = None, None
        if self._order is None and self._iter is None:
            self._start_epoch()
        self.position += 1
        if self._tensors is not None:
            assert self._order is not None
            idx = self._slice(self._order, self.position - 1)
            return self._tensors[0][idx], self._tensors[1][idx]
        assert self._iter is not None
        x, y = next(self._iter)[:2]
        self._targets = y
        return (to_device(x, self.device, non_blocking=True),
                to_device(y, self.device, non_blocking=True))

    def check_targets(self, guard: ClassGuard, out: Any, at: str) -> None:
        """`guard`'s check of the targets behind `out`, the model's output on the batch just
        drawn, before the loss reads them: in-memory targets whole, at the first batch
        only; a loader's batch by batch, as the loader gave them (`at`: the step)."""
        if self._whole:
            if self._targets is not None:
                guard.check(out, self._targets, "training")
            self._targets = None
        else:
            guard.check(out, self._targets, "training", at=at)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self._order, self._iter = None, None
        if self.position:
            self._start_epoch()


def evaluate(model: nn.Module, data: Data, loss_fn: Callable[..., torch.Tensor],
             metric: str | None, device: torch.device, *, max_samples: int | None = None,
             amp: str | None = None, which: str = "validation",
             baseline: ConstantBaseline | None = None) -> tuple[float, float | None]:
    """Mean loss (and accuracy when `metric == "accuracy"`) over `data` (its first
    `max_samples` samples if given), in eval mode; the model's mode is restored. Class
    labels are checked against the model's outputs before the loss reads them
    (`ClassGuard`; an error names the `which` data's sample). A `baseline` given is fed
    every batch's targets on the way.

    Under torchrun each rank scores every N-th sample and the sums are all-reduced, so every
    rank returns the same numbers (pass the bare model, not its DDP wrapper)."""
    was_training = model.training
    model.eval()
    team = distributed.world()
    rank, size = team.rank, team.size
    total_loss, correct, judged, seen = 0.0, 0, 0, 0
    guard = ClassGuard(loss_fn)
    # the k-th sample this rank reads is the data's sample rank + size * k (a DataLoader's
    # own order is the loader's: its k-th)
    first, stride = (0, 1) if isinstance(data, DataLoader) else (rank, size)
    tensors = _tensors(data)
    if tensors is not None:
        x_all, y_all = tensors
        n = len(y_all) if max_samples is None else min(max_samples, len(y_all))
        if size > 1:
            x_all, y_all = x_all[rank:n:size], y_all[rank:n:size]
            n = len(y_all)
        batches: Any = ((x_all[i:i + EVAL_BATCH], y_all[i:i + EVAL_BATCH])
                        for i in range(0, n, EVAL_BATCH))
    elif isinstance(data, DataLoader):
        batches = data
    else:
        n = num_samples(data) if max_samples is None else min(max_samples, num_samples(data))
        sliced = size > 1 or max_samples is not None
        batches = DataLoader(Subset(data, range(rank, n, size)) if sliced else data,
                             EVAL_BATCH)
        max_samples = None  # the subset holds this rank's share of them
    # a DataLoader draws its workers' seed from the global RNG at every iter(), so an
    # evaluation would move the training's shuffle: how often one evaluates would change
    # the training (tune's trials against `disciplined train` at the same spec)
    try:
        with torch.no_grad(), _autocast(device, amp), torch.random.fork_rng(devices=[]):
            for batch in batches:
                if max_samples is not None and seen >= max_samples:
                    break
                x, y = to_device(batch[0], device), to_device(batch[1], device)
                with blamed(x, y, which):
                    out = model(x)
                    # the loss's float() below waits for the device anyway
                    guard.check(out, batch[1], which, samples=(first + stride * seen, stride),
                                on_device=True)
                    scores = out.float() if isinstance(out, torch.Tensor) else out
                    total_loss += float(loss_fn(scores, y)) * len(y)
                    if baseline is not None:
                        baseline.add(out, batch[1])
                    if metric == "accuracy":
                        right, labels = correct_count(out, y)
                        correct, judged = correct + right, judged + labels
                seen += len(y)
    finally:
        model.train(was_training)
    total_loss, correct_f, judged_f, seen_f = distributed.total([total_loss, correct, judged,
                                                                 seen])
    if seen_f == 0:
        raise ValueError("the validation data is empty")
    return total_loss / seen_f, (correct_f / max(judged_f, 1) if metric == "accuracy" else None)


def _autocast(device: torch.device, amp: str | None) -> Any:
    if amp is None:
        return torch.autocast(device.type, enabled=False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device.type, dtype=dtype)


class LossBuffer:
    """Per-step training losses kept on the device and brought to the host `every` steps in
    one copy, so the host does not wait for the device at each step (a `loss.item()` per
    step idles a GPU while Python prepares the next step). Under torchrun the values are
    averaged over ranks at the flush: one collective per flush, every rank the same values."""

    def __init__(self, every: int | None = None) -> None:
        self.every = SYNC_EVERY if every is None else every
        self.pending: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor | float) -> None:
        self.pending.append(torch.as_tensor(loss).detach().reshape(()))

    def full(self) -> bool:
        return len(self.pending) >= self.every

    def flush(self) -> list[float]:
        if not self.pending:
            return []
        values = [float(v) for v in torch.stack(self.pending).float().tolist()]
        self.pending = []
        return distributed.mean(values)


@dataclasses.dataclass
class History:
    """What a run recorded: per optimizer step and per evaluation, with timings."""

    step: list[int] = dataclasses.field(default_factory=list)
    lr: list[float] = dataclasses.field(default_factory=list)
    momentum: list[float | None] = dataclasses.field(default_factory=list)
    train_loss: list[float] = dataclasses.field(default_factory=list)
    eval_step: list[int] = dataclasses.field(default_factory=list)
    val_loss: list[float] = dataclasses.field(default_factory=list)
    val_metric: list[float | None] = dataclasses.field(default_factory=list)
    eval_seconds: list[float] = dataclasses.field(default_factory=list)
    wall_seconds: float = 0.0
    samples_per_second: float = 0.0
    epochs: float = 0.0
    stop_reason: StopReason = ""
    # the validation loss of the best constant prediction (`ConstantBaseline`), from the
    # first evaluation; None where it cannot be read (a loss or targets of no form it knows,
    # one class) or another framework trained the run
    baseline: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls.from_dict(json.loads(text))


class Trainer:
    """One model, one optimizer, one loss, the data and the schedules: a run you can pause.

    Seeds torch's global RNG with `seed` (dropout and the like draw from it), and orders the
    batches by `seed`; same seed, same numbers on the same machine. On CUDA that takes
    deterministic cuDNN kernels: with `deterministic=True` (the default) this sets the
    process-wide `torch.backends.cudnn.deterministic` (and turns cuDNN's autotuner off).
    `amp` is "bf16" or "fp16" (fp16 on CUDA only, with a gradient scaler). `accumulate`
    micro-batches make one optimizer step; `clip_grad_norm` clips the global gradient norm.

    Under torchrun (see `distributed.init_from_env`) the model trains wrapped in
    DistributedDataParallel, `batch_size` is per process (the total batch is `batch_size x
    world size`), the recorded training loss is the mean over ranks, and every rank stops at
    the same step. `model` stays the bare module.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[..., torch.Tensor],
        train_data: Data,
        val_data: Data | None = None,
        *,
        scheduler: HyperScheduler | None = None,
        metric: str | None = "accuracy",
        batch_size: int = 128,
        eval_every: int | None = None,
        eval_samples: int | None = None,
        accumulate: int = 1,
        clip_grad_norm: float | None = None,
        amp: str | None = None,
        compile: bool = False,
        device: str | torch.device | None = None,
        seed: int = 0,
        progress: bool = False,
        on_eval: Callable[[int, float, float | None], None] | None = None,
        deterministic: bool = True,
        label: str = "",
    ) -> None:
        if accumulate < 1:
            raise ValueError(f"accumulate must be an int >= 1, got {accumulate}")
        if amp is not None and amp not in AMP_CHOICES:
            raise ValueError(f"amp must be None or one of {', '.join(AMP_CHOICES)}, got "
                             f"{amp!r}")
        self.device = pick_device(device)
        amp = resolve_amp(amp, self.device)
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' or none")
        self.model = model.to(self.device)
        self.world = distributed.world()
        self._net: Any = distributed.wrap(self.model)  # the DDP wrapper under torchrun
        if compile:  # the training forward only: evaluation stays eager (no recompiles)
            self._net = torch.compile(self._net)
        self.optimizer, self.loss_fn, self.scheduler = optimizer, loss_fn, scheduler
        self.val_data, self.metric = val_data, metric
        self.batch_size, self.accumulate, self.clip = batch_size, accumulate, clip_grad_norm
        self.amp, self.progress, self.on_eval = amp, progress, on_eval
        self.eval_samples = eval_samples
        torch.manual_seed(seed + self.world.rank)  # each rank its own dropout masks
        if deterministic and self.device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.batches = BatchStream(train_data, batch_size, seed=seed, device=self.device)
        self._guard = ClassGuard(loss_fn)
        self.steps_per_epoch = steps_per_epoch(train_data, batch_size, accumulate)
        self.eval_every = eval_every or self.steps_per_epoch
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        self.step = 0
        self.history = History()
        self._losses = LossBuffer()
        self._samples_per_step = batch_size * accumulate * self.world.size
        self._bar: Any = None
        self.label = label  # shown on the progress bar

    # --- the loop -------------------------------------------------------------------------

    def run(self, *, epochs: float | None = None, steps: int | None = None,
            seconds: float | None = None) -> History:
        """Train until the first budget runs out (epochs, optimizer steps or wall seconds)."""
        if epochs is None and steps is None and seconds is None:
            raise ValueError("give a budget: epochs, steps or seconds")
        limit = math.inf
        if steps is not None:
            limit = min(limit, self.step + steps)
        if epochs is not None:
            limit = min(limit, self.step + math.ceil(epochs * self.steps_per_epoch))
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=None if math.isinf(limit) else int(limit - self.step),
                       unit="step", leave=False, desc=self.label or None)
        self._bar = bar
        start = time.perf_counter()
        trained_seconds, first_step = 0.0, self.step
        reason: StopReason = "budget"
        try:
            while self.step < limit:
                if seconds is not None and distributed.any_rank(
                        time.perf_counter() - start >= seconds):
                    reason = "time"
                    break
                t0 = time.perf_counter()
                self._train_step()
                evaluate_now = self.val_data is not None and self.step % self.eval_every == 0
                finite = True
                if self._losses.full() or evaluate_now or self.step >= limit:
                    finite = self._flush()
                    if bar is not None:
                        bar.set_postfix(loss=f"{self.history.train_loss[-1]:.4f}",
                                        refresh=False)
                trained_seconds += time.perf_counter() - t0
                if bar is not None:
                    bar.update(1)
                if not finite:
                    reason = "diverged"
                    break
                if evaluate_now:
                    self._evaluate(start)
            if not self._flush():  # a budget in seconds may stop between flushes
                reason = "diverged"
            if self.val_data is not None and (not self.history.eval_step
                                              or self.history.eval_step[-1] != self.step):
                self._evaluate(start)
        finally:
            if bar is not None:
                bar.close()
        h = self.history
        h.wall_seconds += time.perf_counter() - start
        done = self.step - first_step
        if trained_seconds > 0:
            h.samples_per_second = done * self._samples_per_step / trained_seconds
        h.epochs = self.step / self.steps_per_epoch
        h.stop_reason = reason
        return h

    def _flush(self) -> bool:
        """Bring the losses of the steps since the last flush to the host (one sync) into the
        history; False if one was not finite. The run stops there: the history ends at that
        step, as if it had been read at once, and the steps taken after it (at most
        SYNC_EVERY - 1, on weights already ruined) are not counted."""
        values = self._losses.flush()
        h = self.history
        h.train_loss.extend(values)
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        if bad is None:
            return True
        keep = len(h.train_loss) - len(values) + bad + 1
        del h.train_loss[keep:], h.step[keep:], h.lr[keep:], h.momentum[keep:]
        self.step = h.step[-1] + 1
        return False

    def _train_step(self) -> None:
        opt, model = self.optimizer, self.model
        total: torch.Tensor | float = 0.0
        for micro in range(self.accumulate):
            x, y = self.batches.next()
            # DDP all-reduces gradients on the last micro-batch only
            last = micro == self.accumulate - 1 or self._net is model
            sync = contextlib.nullcontext() if last else self._net.no_sync()
            with sync:
                with _autocast(self.device, self.amp), blamed(x, y, "training step", self.step):
                    out = self._net(x)
                    self.batches.check_targets(self._guard, out, f"at training step {self.step}")
                    loss = self.loss_fn(out, y) / self.accumulate
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                else:
                    loss.backward()
            total = total + loss.detach()  # kept on the device: no host sync per step
        if self.clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip)
        group = opt.param_groups[0]
        self.history.step.append(self.step)
        self.history.lr.append(float(group["lr"]))
        self.history.momentum.append(group_momentum(group))
        self._losses.add(total)  # the history gets it at the next flush
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1

    def _evaluate(self, start: float) -> None:
        assert self.val_data is not None
        h = self.history
        constant = ConstantBaseline(self.loss_fn) if not h.eval_step else None
        loss, metric = evaluate(self.model, self.val_data, self.loss_fn, self.metric,
                                self.device, max_samples=self.eval_samples, amp=self.amp,
                                baseline=constant)
        if constant is not None:
            h.baseline = constant.loss(distributed.total)
        h.eval_step.append(self.step)
        h.val_loss.append(loss)
        h.val_metric.append(metric)
        h.eval_seconds.append(h.wall_seconds + time.perf_counter() - start)
        if self._bar is not None:
            self._bar.set_postfix(val_loss=f"{loss:.4f}", refresh=False)
        if self.on_eval is not None:
            self.on_eval(self.step, loss, metric)

    # --- snapshots ------------------------------------------------------------------------

    def snapshot(self, path: str | Path | None = None) -> dict[str, Any]:
        """The full state (model, optimizer, schedules, scaler, RNGs, data position, step,
        history), deep-copied in memory; also written to `path` if given."""
        snap = copy.deepcopy({
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "batches": self.batches.state(),
            "step": self.step,
            "history": dataclasses.asdict(self.history),
        })
        snap["rng"] = rng_state()
        if path is not None:
            buffer = io.BytesIO()
            torch.save(snap, buffer)
            Path(path).write_bytes(buffer.getvalue())
        return snap

    def restore(self, snap: dict[str, Any] | str | Path) -> None:
        """Go back to a snapshot (a dict from `snapshot()` or the path it was written to)."""
        state: dict[str, Any] = snap if isinstance(snap, dict) else \
            torch.load(snap, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state(state["batches"])
        self.step = state["step"]
        self.history = History(**copy.deepcopy(state["history"]))
        set_rng_state(state["rng"])


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python RNG states."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
