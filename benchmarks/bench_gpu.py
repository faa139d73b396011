"""On one GPU: samples per second of a hand-written loop, our `Trainer` and Lightning's
`Trainer` (same model, data, batch, precision and 1cycle), our range test against a raw loop
of the same steps, and `tune`'s total time against its final training alone.

Models: a ResNet-18 for 32x32 inputs (scikit-learn's bundled digits, upsampled to 32x32 and
3 channels: real images that need no download) and the zoo's character-level GPT. The raw
loop is the floor: data on the device, batches sliced by a permutation, autocast, no host
sync until the end. Each contender runs `--warmup` steps, then `--steps` timed steps
(synchronised before and after); medians of `--repeats`, interleaved.

    make bench-gpu            (through the device tool, on a lent GPU machine)
    python benchmarks/bench_gpu.py --smoke --device cpu   (a quick check that it runs)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import header, publish
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from disciplined import HyperScheduler, schedules
from disciplined.engine import Trainer, pick_device, resolve_amp
from disciplined.range_test import lr_range_test
from disciplined.recipe import tune
from disciplined.study import Study
from disciplined.tasks import load_task

MARK = "bench-gpu"


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(out)) + self.skip(x))


def resnet18(width: int = 64, classes: int = 10) -> nn.Module:
    """ResNet-18 for 32x32 inputs (the CIFAR variant: a 3x3 stem, no max-pool)."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU()]
    cin = width
    for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        layers += [Block(cin, cout, 1 if i == 0 else 2), Block(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def digits32() -> TensorDataset:
    """The bundled digits as 32x32 RGB images (bilinear upsampling), 1797 of them."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return TensorDataset(x, torch.tensor(bunch.target))


def workloads(smoke: bool) -> dict[str, tuple[Callable[[], nn.Module], TensorDataset, int,
                                              nn.Module]]:
    """name: (model factory, training data, batch size, loss)."""
    gpt = load_task("zoo/char_gpt_stdlib")
    train, _ = gpt.datasets()
    return {
        "resnet18-digits32": (lambda: resnet18(8 if smoke else 64), digits32(),
                              64 if smoke else 512, nn.CrossEntropyLoss()),
        "char-gpt": (gpt.build_model, train, 16 if smoke else gpt.batch_size, gpt.loss_fn),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device: torch.device, amp: str | None) -> object:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def raw_loop(make: Callable[[], nn.Module], data: TensorDataset, batch: int, loss_fn: nn.Module,
             device: torch.device, amp: str | None, warmup: int, steps: int) -> float:
    """Samples per second of the floor: everything on the device, one sync at the end."""
    torch.manual_seed(0)
    model = make().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=warmup + steps)
    x_all, y_all = (t.to(device) for t in data.tensors)
    order = torch.randperm(len(y_all), device=device)
    per_epoch = len(y_all) // batch
    start = 0.0
    losses = []
    for k in range(warmup + steps):
        if k == warmup:
            _sync(device)
            start = time.perf_counter()
        if k % per_epoch == 0:
            order = torch.randperm(len(y_all), device=device)
        idx = order[(k % per_epoch) * batch:(k % per_epoch + 1) * batch]
        with _autocast(device, amp):
            loss = loss_fn(model(x_all[idx]), y_all[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        losses.append(loss.detach())
    torch.stack(losses).tolist()
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def ours(make: Callable[[], nn.Module], data: TensorDataset, batch: int, loss_fn: nn.Module,
         device: torch.device, amp: str | None, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    total = warmup + steps
    trainer = Trainer(model, opt, loss_fn, data, None, batch_size=batch, device=device,
                      amp=amp, scheduler=HyperScheduler(opt, lr=schedules.one_cycle(total, 0.1),
                                                        momentum=schedules.one_cycle_momentum(
                                                            total)))
    trainer.run(steps=warmup)
    _sync(device)
    start = time.perf_counter()
    trainer.run(steps=steps)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def lightning(make: Callable[[], nn.Module], data: TensorDataset, batch: int, loss_fn: nn.Module,
              device: torch.device, amp: str | None, warmup: int, steps: int) -> float:
    """Lightning's own path: a DataLoader (pinned memory), its loop, `bf16-mixed`, and
    OneCycleLR stepped every step."""
    import pytorch_lightning as pl

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make()

        def training_step(self, b: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            return loss_fn(self.net(b[0]), b[1])

        def configure_optimizers(self) -> object:
            opt = torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1,
                                                        total_steps=warmup + steps)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    marks: dict[str, float] = {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, *_: object) -> None:
            if trainer.global_step == warmup and "start" not in marks:
                _sync(device)
                marks["start"] = time.perf_counter()

        def on_train_end(self, *_: object) -> None:
            _sync(device)
            marks["end"] = time.perf_counter()

    torch.manual_seed(0)
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True,
                        pin_memory=device.type == "cuda")
    trainer = pl.Trainer(max_steps=warmup + steps, accelerator=device.type, devices=1,
                         precision="bf16-mixed" if amp == "bf16" else "32-true",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Clock()])
    trainer.fit(Module(), loader)
    return steps * batch / (marks["end"] - marks["start"])


def range_tests(make: Callable[[], nn.Module], data: TensorDataset, batch: int,
                loss_fn: nn.Module, device: torch.device, steps: int) -> tuple[float, float]:
    """Seconds of our range test (restore included) and of a raw loop of the same sweep."""
    torch.manual_seed(0)
    model = make().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    _sync(device)
    start = time.perf_counter()
    lr_range_test(model, opt, loss_fn, data, start_lr=1e-5, end_lr=0.1, num_steps=steps,
                  batch_size=batch, diverge_factor=None, device=device)
    _sync(device)
    ours_s = time.perf_counter() - start
    sweep = schedules.lr_range(1e-5, 0.1, steps)
    x_all, y_all = (t.to(device) for t in data.tensors)
    order = torch.randperm(len(y_all), device=device)
    per_epoch = len(y_all) // batch
    losses = []
    _sync(device)
    start = time.perf_counter()
    for k in range(steps):
        for group in opt.param_groups:
            group["lr"] = sweep(k)
        idx = order[(k % per_epoch) * batch:(k % per_epoch + 1) * batch]
        loss = loss_fn(model(x_all[idx]), y_all[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    torch.stack(losses).tolist()
    _sync(device)
    return ours_s, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="default: cuda when there is one")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    amp = resolve_amp("auto", device)
    rows, range_rows = [], []
    for name, (make, data, batch, loss_fn) in workloads(args.smoke).items():
        speeds: dict[str, list[float]] = {"raw loop": [], "ours": [], "Lightning": []}
        for _ in range(args.repeats):  # interleaved, so drifts hit all alike
            for label, run in (("raw loop", raw_loop), ("ours", ours), ("Lightning", lightning)):
                speeds[label].append(run(make, data, batch, loss_fn, device, amp, args.warmup,
                                         args.steps))
        med = {k: statistics.median(v) for k, v in speeds.items()}
        rows.append(f"| {name} | {batch} | {med['raw loop']:,.0f} | {med['ours']:,.0f} "
                    f"({med['ours'] / med['raw loop']:.3f}x) | {med['Lightning']:,.0f} "
                    f"({med['Lightning'] / med['raw loop']:.3f}x) |")
        pairs = [range_tests(make, data, batch, loss_fn, device, args.steps)
                 for _ in range(args.repeats)]
        ours_s = statistics.median(p[0] for p in pairs)
        raw_s = statistics.median(p[1] for p in pairs)
        range_rows.append(f"| {name} | {args.steps} | {raw_s:.2f} s | {ours_s:.2f} s "
                          f"({ours_s / raw_s:.3f}x) |")
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        tune("zoo/char_gpt_stdlib", out=out, budget_epochs=0.25 if args.smoke else None,
             device=str(device))
        total = time.perf_counter() - started
        with Study(out, resume=True) as study:  # the run that trained the final model (a
            final = study.trials("final")[-1].seconds  # kept full-length run: its own time)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "none"
    driver = torch.version.cuda if device.type == "cuda" else "-"
    lines = header("On one GPU: our Trainer, Lightning's and a raw loop (bench-gpu)",
                   "make bench-gpu", f"CUDA {driver}")
    lines += [f"- device: {device} ({gpu}), autocast {amp or 'none'}; medians of "
              f"{args.repeats} interleaved runs of {args.steps} steps after {args.warmup}",
              "", "| model | batch | raw loop (samples/s) | ours (x the raw loop's speed) | "
              "Lightning (x the raw loop's speed) |",
              "|---|---|---|---|---|", *rows, "",
              "| range test on | steps | raw loop | ours, restore included (x the raw loop's "
              "time) |",
              "|---|---|---|---|", *range_rows, "",
              f"tune on zoo/char_gpt_stdlib: {total:.1f} s in all, its final training "
              f"{final:.1f} s ({total / final:.2f}x)."]
    publish(lines, args.write, MARK)


if __name__ == "__main__":
    main()
