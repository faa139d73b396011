"""The Lightning and Hugging Face integrations inside the real frameworks.

1. Overhead: a step with our scheduler (Lightning's OneCycle callback; OneCycleTrainer)
   against the framework's own path with torch's OneCycleLR (Lightning: returned by
   configure_optimizers, stepped every batch; HF: `optimizers=(AdamW, OneCycleLR)`), same
   model, data and steps; median of interleaved repeats.
2. Lightning: our range test against `Tuner.lr_find` on one LightningModule (MNIST-1D's CNN,
   SGD momentum 0.9): wall time (median of 3), suggestion, and a 1cycle training at each
   suggestion (the task's length, 2 seeds) scored on the validation set.
3. Hugging Face: a tiny BERT (from a config) on generated token sequences: `disciplined
   tune` on it (an HF task: every trial a fresh model and OneCycleTrainer), and our range
   test's suggestion with OneCycleTrainer, against the Trainer's default (linear decay from
   5e-5), same final length (3 epochs), 2 seeds.

    make bench-integrations
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
import transformers
from _common import end_of, header, publish
from lightning.pytorch.tuner import Tuner
from torch.utils.data import DataLoader

from disciplined import hf, lightning
from disciplined.recipe import tune
from disciplined.tasks import load_task

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from hf_tiny import Majority, model_init

MARK = "integrations"
TASK = load_task("mnist1d")
EPOCHS = int(TASK.epochs or 10)


class Mnist1d(pl.LightningModule):
    """MNIST-1D's CNN; `onecycle_lr` makes configure_optimizers return torch's OneCycleLR."""

    def __init__(self, lr: float = 0.01, onecycle_lr: float | None = None) -> None:
        super().__init__()
        self.net, self.lr, self.onecycle_lr = TASK.model(), lr, onecycle_lr

    def training_step(self, batch, _):
        return F.cross_entropy(self.net(batch[0]), batch[1])

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
        if self.onecycle_lr is None:
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, self.onecycle_lr, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def loaders(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    train, val = TASK.datasets()
    g = torch.Generator().manual_seed(seed)
    return (DataLoader(train, batch_size=TASK.batch_size, shuffle=True, generator=g),
            DataLoader(val, batch_size=512))


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        transformers.logging.set_verbosity_error()
        yield


def timed(scheduler) -> list[float]:
    """Wrap `scheduler.step` (on the instance: what the framework calls) to add up its
    seconds in the list returned."""
    spent = [0.0]
    step = scheduler.step

    def timed_step(*args, **kwargs):
        began = time.perf_counter()
        step(*args, **kwargs)
        spent[0] += time.perf_counter() - began

    scheduler.step = timed_step
    return spent


class Clock(pl.Callback):
    """The epochs' loops' seconds (setup excluded) and the scheduler's share of them."""

    def __init__(self) -> None:
        self.seconds, self.scheduler = 0.0, [0.0]

    def on_train_start(self, trainer, *_):
        self.scheduler = timed(trainer.lr_scheduler_configs[0].scheduler)

    def on_train_epoch_start(self, *_):
        self.began = time.perf_counter()

    def on_train_epoch_end(self, *_):
        self.seconds += time.perf_counter() - self.began


def fit(module: Mnist1d, callbacks: list, epochs: int, seed: int, validate: bool = False
        ) -> tuple[float, float | None, float]:
    """Training seconds, the validation accuracy and the scheduler's seconds."""
    clock = Clock()

    torch.manual_seed(seed)
    train, val = loaders(seed)
    with tempfile.TemporaryDirectory() as tmp, quiet():
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=tmp,
                             callbacks=[*callbacks, clock])
        trainer.fit(module, train)
    if not validate:
        return clock.seconds, None, clock.scheduler[0]
    module.eval()
    with torch.no_grad():
        right = sum(int((module.net(x).argmax(1) == y).sum()) for x, y in val)
    return clock.seconds, right / len(val.dataset), clock.scheduler[0]


def overhead(runs: dict[str, list[tuple[float, float]]]) -> str:
    """A table row's cells: each path's loop time and its scheduler's share of it (median
    over repeats), and the loop time's difference."""
    loop = {k: statistics.median(t for t, _ in v) for k, v in runs.items()}
    share = {k: statistics.median(s / t for t, s in v) for k, v in runs.items()}
    return (f"{loop['ours']:.3f} s ({100 * share['ours']:.2f}%) | {loop['theirs']:.3f} s "
            f"({100 * share['theirs']:.2f}%) | {100 * (loop['ours'] / loop['theirs'] - 1):+.1f}%")


def interleaved(repeats: int, run) -> dict[str, list[tuple[float, float]]]:
    """`run(name, repeat)` for both paths, the first of each pair alternating."""
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "theirs": []}
    for r in range(repeats):
        for name in (("theirs", "ours") if r % 2 == 0 else ("ours", "theirs")):
            runs[name].append(run(name, r))
    return runs


def lightning_overhead(repeats: int, epochs: int) -> str:
    def run(name: str, r: int) -> tuple[float, float]:
        if name == "ours":
            seconds, _, sched = fit(Mnist1d(), [lightning.OneCycle(max_lr=0.05)], epochs, r)
        else:
            seconds, _, sched = fit(Mnist1d(onecycle_lr=0.05), [], epochs, r)
        return seconds, sched

    return overhead(interleaved(repeats, run))


def lightning_finders(seeds: list[int], repeats: int) -> list[str]:
    def ours() -> tuple[float | None, int]:
        torch.manual_seed(0)
        with quiet():
            found = lightning.range_test(Mnist1d(), train_dataloaders=loaders()[0],
                                         accelerator="cpu", devices=1)
        return found.max_lr, len(found.runs[0].loss)

    def tuner() -> tuple[float | None, int]:
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp, quiet():
            trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1000, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, default_root_dir=tmp)
            found = Tuner(trainer).lr_find(Mnist1d(), train_dataloaders=loaders()[0],
                                           min_lr=1e-7, max_lr=10.0, num_training=100)
        if found is None:
            return None, 0
        value = found.suggestion()
        return (float(value) if value is not None else None), len(found.results["lr"])

    finders = {"disciplined.lightning.range_test": ours, "Lightning Tuner.lr_find": tuner}
    for finder in finders.values():  # the process's first fits pay one-time set-up: not timed
        finder()
    times: dict[str, list[float]] = {n: [] for n in finders}
    found: dict[str, tuple[float | None, int]] = {}
    for r in range(repeats):  # interleaved, each finder first in every other round
        for name in (list(finders) if r % 2 == 0 else list(reversed(finders))):
            start = time.perf_counter()
            found[name] = finders[name]()
            times[name].append(time.perf_counter() - start)
    rows = []
    for name, (lr, steps) in found.items():
        accs = [] if lr is None else [
            fit(Mnist1d(), [lightning.OneCycle(max_lr=lr)], EPOCHS, s, validate=True)[1]
            for s in seeds]
        acc = "-" if not accs else f"{100 * statistics.mean(accs):.2f}% " \
            f"({', '.join(f'{100 * a:.2f}' for a in accs)})"
        ts = sorted(times[name])
        rows.append(f"| {name} | {statistics.median(ts):.3f} s ({ts[0]:.3f}-{ts[-1]:.3f}) | "
                    f"{steps} | {'-' if lr is None else f'{lr:.3g}'} | {acc} |")
        print(rows[-1], flush=True)
    return rows


def hf_args(out: str, seed: int, **kwargs) -> transformers.TrainingArguments:
    return transformers.TrainingArguments(
        output_dir=out, per_device_train_batch_size=32, num_train_epochs=3, seed=seed,
        report_to="none", disable_tqdm=True, logging_strategy="no", save_strategy="no",
        eval_strategy="no", use_cpu=True, **kwargs)


class _TimeScheduler(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.spent = [0.0]

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self.spent = timed(lr_scheduler)


def hf_train(trainer_cls, seed: int, optimizers=None, **kwargs) -> tuple[float, dict, float]:
    train, val = Majority(2000, 0), Majority(500, 1)

    def accuracy(pred) -> dict[str, float]:
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    with tempfile.TemporaryDirectory() as tmp, quiet():
        extra = {"model": optimizers[0]} if optimizers else {"model_init": model_init}
        clock = _TimeScheduler()
        trainer = trainer_cls(args=hf_args(tmp, seed, **kwargs), train_dataset=train,
                              eval_dataset=val, compute_metrics=accuracy,
                              optimizers=optimizers[1:] if optimizers else (None, None),
                              callbacks=[clock], **extra)
        began = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - began
        return seconds, trainer.evaluate(), clock.spent[0]


def hf_overhead(repeats: int) -> str:
    steps = 3 * 63  # 2000 samples / 32 a batch, 3 epochs

    def run(name: str, r: int) -> tuple[float, float]:
        torch.manual_seed(r)
        model = model_init()
        # the same optimizer on both paths: the Trainer's own (AdamW, no-decay group)
        if name == "ours":
            seconds, _, sched = hf_train(hf.OneCycleTrainer, r, learning_rate=3e-3)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
            one_cycle = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
            seconds, _, sched = hf_train(transformers.Trainer, r, (model, opt, one_cycle))
        return seconds, sched

    return overhead(interleaved(repeats, run))


# the tiny BERT as a task file for `disciplined tune`: the data and arguments of hf_train
HF_TASK = f'''
import sys
sys.path.insert(0, {str(Path(__file__).parents[1] / "tests")!r})
from hf_tiny import Majority, model_init
from transformers import TrainingArguments
from disciplined.hf import task


def accuracy(pred):
    return {{"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}}


TASK = task(model_init, lambda: (Majority(2000, 0), Majority(500, 1)),
            TrainingArguments(per_device_train_batch_size=32, use_cpu=True, report_to="none"),
            compute_metrics=accuracy, metric="accuracy", epochs=3)
'''


def hf_tune(seed: int) -> tuple[float, dict, float, dict]:
    """`disciplined tune` on the tiny BERT (3 epochs of final training): its final
    evaluation, wall time (tuning included) and the hyper-parameters it chose."""
    with tempfile.TemporaryDirectory() as tmp, quiet():
        task_file = Path(tmp) / "tiny_bert.py"
        task_file.write_text(HF_TASK)
        began = time.perf_counter()
        study = tune(str(task_file), out=Path(tmp) / "study", budget_epochs=3, seed=seed)
        seconds = time.perf_counter() - began
    final = study.summary["final"]
    loss, metric = end_of(final)  # as the Trainer's own run is scored: at its end
    return (loss, {"eval_accuracy": metric}, seconds,
            study.hyperparameters)


def hf_default_vs_ours(seeds: list[int]) -> list[str]:
    with quiet():
        found = hf.range_test(model_init, Majority(2000, 0), hf_args("unused", 0))
    rows = []
    for name, cls, kwargs in (
            ("Trainer default (linear decay from 5e-5)", transformers.Trainer, {}),
            (f"OneCycleTrainer at our range test's {found.max_lr:.3g}", hf.OneCycleTrainer,
             {"learning_rate": found.max_lr})):
        runs = [hf_train(cls, s, **kwargs) for s in seeds]
        loss = statistics.mean(m["eval_loss"] for _, m, _ in runs)
        acc = statistics.mean(m["eval_accuracy"] for _, m, _ in runs)
        wall = statistics.mean(t for t, _, _ in runs)
        rows.append(f"| {name} | {loss:.3f} | {100 * acc:.2f}% | {wall:.1f} s |")
        print(rows[-1], flush=True)
    tuned = [hf_tune(s) for s in seeds]
    chosen = "; ".join(f"seed {s}: max LR {h['max_lr']:.3g}, wd {h['weight_decay']:g}, "
                       f"momentum {h['momentum'][0]:g}" for s, (*_, h) in zip(seeds, tuned,
                                                                              strict=True))
    rows.append(f"| `disciplined tune` ({chosen}) | "
                f"{statistics.mean(t[0] for t in tuned):.3f} | "
                f"{100 * statistics.mean(t[1]['eval_accuracy'] for t in tuned):.2f}% | "
                f"{statistics.mean(t[2] for t in tuned):.1f} s (tuning included) |")
    print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=6)  # even: each finder first as often
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    lightning_row = lightning_overhead(args.repeats, 3)
    print(lightning_row, flush=True)
    hf_row = hf_overhead(args.repeats)
    print(hf_row, flush=True)
    finder_rows = lightning_finders(args.seeds, args.repeats)
    hf_rows = hf_default_vs_ours(args.seeds)
    lines = [
        *header("Integrations: Lightning and Hugging Face", "make bench-integrations",
                f"lightning {pl.__version__}, transformers {transformers.__version__}"),
        "",
        "Overhead: the training loop's time with our scheduler against the framework's own "
        "path with torch's OneCycleLR, and in brackets the scheduler's own `step()` calls' "
        "share of that time, measured inside the framework (median of "
        f"{args.repeats} interleaved repeats; goal: ours <= 2% of a step).",
        "",
        "| framework, model | ours (scheduler's share) | torch OneCycleLR (its share) | "
        "loop time difference |",
        "|---|---|---|---|",
        f"| Lightning, MNIST-1D CNN, 3 epochs (96 steps) | {lightning_row} |",
        f"| HF Trainer, tiny BERT, 3 epochs (189 steps), the Trainer's AdamW | {hf_row} |",
        "",
        "Range tests on one LightningModule (MNIST-1D CNN, SGD momentum 0.9, wd 5e-4, "
        f"1e-7 -> 10 in 100 steps); each suggestion trained with OneCycle for {EPOCHS} "
        f"epochs, seeds {', '.join(map(str, args.seeds))} (goal: ours trains at least as "
        "well, and is not slower).",
        "",
        f"| range test | wall time (median of {args.repeats} interleaved repeats after an "
        "untimed one; range) | steps | suggestion | validation accuracy (mean; per seed) |",
        "|---|---|---|---|---|",
        *finder_rows,
        "",
        "Hugging Face tiny BERT (2 layers, hidden 32, from a config) on generated sequences "
        "(which of two tokens is more frequent; 2000 training, 500 validation), a final "
        f"training of 3 epochs, mean of seeds {', '.join(map(str, args.seeds))} (goal: "
        "`tune` beats the Trainer's default at equal final length). `tune` ran with "
        "`--budget-epochs 3`: its budget is then about 4 final trainings counted in training "
        "steps; each run's set-up and 12 evaluations come on top, and on this tiny model they "
        "cost more than its steps, hence its wall time.",
        "",
        "| training | validation loss | accuracy | wall time |",
        "|---|---|---|---|",
        *hf_rows,
    ]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
