"""The `disciplined` command: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from . import schedules
from .errors import DisciplinedError

if TYPE_CHECKING:
    from .distributed import World

app = typer.Typer(
    help="Set hyper-parameters the disciplined way (Smith 2018), then train with them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

OutDir = Annotated[Path, typer.Option("--out", help="Folder for the outputs.")]
Seed = Annotated[int, typer.Option(help="Seed for weights and batch order.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar; plain log lines.")]
BatchSize = Annotated[int | None, typer.Option(help="Per process; default: the task's.")]


def _join_torchrun() -> World:
    """Join torchrun's process group when launched by it (a world of one otherwise); only
    rank 0 prints."""
    from .distributed import init_from_env

    team = init_from_env()
    if not team.is_main:
        console.quiet = True
    return team


def _batch_line(per_process: int) -> str:
    from .distributed import world

    size = world().size
    if size == 1:
        return f"batch {per_process}"
    return (f"total batch {per_process * size} ({per_process} per process x {size} "
            f"processes)")


def _fail(err: Exception) -> typer.Exit:
    from rich.markup import escape

    errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
    return typer.Exit(code=2)


@app.command()
def demo(
    out: OutDir = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    max_lr: Annotated[float, typer.Option(help="1cycle's peak learning rate.")] = 0.3,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Train a small CNN on the bundled digits with 1cycle and cyclical momentum."""
    from .demo import load_digits_split, steps_per_epoch, train_digits
    from .plot import plot_schedule

    try:
        data = load_digits_split(seed)
        total = steps_per_epoch(data) * epochs
        lr = schedules.one_cycle(total, max_lr)
        momentum = schedules.one_cycle_momentum(total)
    except (ValueError, DisciplinedError) as err:
        raise _fail(err) from None
    plot = plot_schedule(out / "schedule.png", lr=lr, momentum=momentum,
                         title=f"1cycle, max_lr={max_lr}, {epochs} epochs on digits")
    console.print(f"1cycle: lr {lr.initial_lr:g} -> {max_lr:g} -> {lr.min_lr:.2g}, "
                  f"momentum 0.95 -> 0.85 -> 0.95, {total} steps")
    one_cycle = _train_with_progress(train_digits, lr, momentum, epochs, seed, data, quiet,
                                     "1cycle")
    constant = _train_with_progress(train_digits, schedules.linear(max_lr, max_lr, total),
                                    schedules.constant(0.9), epochs, seed, data, quiet,
                                    f"constant lr {max_lr:g}")
    console.print(
        f"\nfinal validation accuracy: 1cycle [bold]{one_cycle.final_accuracy:.2%}[/] "
        f"({one_cycle.seconds:.1f} s) vs constant LR {constant.final_accuracy:.2%} "
        f"at the same max LR"
    )
    console.print(f"schedule plot: {plot}")


def _train_with_progress(train: Any, lr: schedules.Schedule, momentum: schedules.Schedule,
                         epochs: int, seed: int, data: Any, quiet: bool, label: str) -> Any:
    from tqdm import tqdm

    console.print(f"\n[bold]{label}[/]")
    bar = tqdm(total=lr.total_steps, desc=label, unit="step", disable=quiet, leave=False)

    def on_step(step: int, train_loss: float) -> None:
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(train_loss=f"{train_loss:.3f}")

    def on_epoch(epoch: int, val_loss: float, val_acc: float) -> None:
        message = f"  epoch {epoch + 1:2d}/{epochs}  val loss {val_loss:.4f}  acc {val_acc:.2%}"
        if quiet:
            console.print(message, highlight=False)
        else:
            bar.write(message)

    try:
        return train(lr, momentum, epochs=epochs, seed=seed, data=data, on_step=on_step,
                     on_epoch=on_epoch)
    finally:
        bar.close()


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare word such as mode=linear


@app.command()
def schedule(
    name: Annotated[str, typer.Argument(help="A constructor in disciplined.schedules, "
                                             "e.g. one_cycle, triangular, lr_range.")],
    args: Annotated[list[str] | None, typer.Argument(
        help="Its keyword arguments as key=value, e.g. total_steps=1000 max_lr=0.5.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write a plot here (.png or .svg).")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps to plot or print; needed for "
                                                   "schedules without total_steps.")] = None,
    log_y: Annotated[bool, typer.Option("--log-y", help="Log-scale the value axis.")] = False,
) -> None:
    """Build a schedule, print it as JSON, and optionally plot it."""
    from .plot import plot_schedule

    constructors = {n: getattr(schedules, n) for n in schedules.__all__
                    if n.islower() and n not in ("from_dict", "kinds")}
    if name not in constructors:
        raise _fail(ValueError(f"unknown schedule {name!r}; choose from "
                               f"{', '.join(sorted(constructors))}"))
    kwargs = {}
    for arg in args or []:
        key, sep, value = arg.partition("=")
        if not sep:
            raise _fail(ValueError(f"arguments are key=value, got {arg!r}"))
        kwargs[key] = _parse_value(value)
    try:
        sched = constructors[name](**kwargs)
        console.print_json(json.dumps(sched.to_dict()))
        if out is not None:
            is_momentum = "momentum" in name
            path = plot_schedule(out, num_steps=steps, log_y=log_y,
                                 **{"momentum" if is_momentum else "lr": sched})
            console.print(f"plot: {path}")
    except (ValueError, TypeError) as err:
        raise _fail(err) from None


TaskArg = Annotated[str, typer.Argument(help="A built-in task (digits, mnist1d, mnist1d-mlp, "
                                         "fashion-mnist, fashion-mnist-mlp) or a task file.")]
DataDir = Annotated[Path | None, typer.Option(help="Folder with Fashion-MNIST's IDX files.")]


def _floats(text: str, name: str, count: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise _fail(ValueError(f"{name} takes {count} comma-separated numbers, got {text!r}"))
    return values


@app.command("find-lr")
def find_lr(
    task: TaskArg,
    out: OutDir = Path("runs/find-lr"),
    val: Annotated[bool, typer.Option("--val", help="Read the validation loss "
                                                     "(Smith's choice).")] = False,
    start_lr: Annotated[float, typer.Option(help="First LR of the sweep.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last LR of the sweep.")] = 10.0,
    steps: Annotated[int, typer.Option(help="Optimizer steps in the sweep.")] = 100,
    mode: Annotated[str, typer.Option(help="exp or linear spacing.")] = "exp",
    repeats: Annotated[int, typer.Option(help="Sweeps with different data orders.")] = 1,
    momentum: Annotated[str, typer.Option(help="Momentum swept from,to during the test.")
                        ] = "0.95,0.85",
    weight_decay: Annotated[float, typer.Option("--wd", help="Weight decay, held.")] = 5e-4,
    batch_size: BatchSize = None,
    seed: Seed = 0,
    data_dir: DataDir = None,
    quiet: Quiet = False,
) -> None:
    """Run the LR range test; write lr_range.json and lr_range.png; print the suggestions."""
    from rich.table import Table

    from .engine import build_optimizer
    from .range_test import lr_range_test
    from .tasks import load_task

    high, low = _floats(momentum, "--momentum", 2)
    team = _join_torchrun()
    try:
        spec = load_task(task, data_dir=data_dir)
        train_data, val_data = spec.datasets()
        model = spec.model(seed)
        optimizer = build_optimizer(spec.optimizer, model, momentum=high,
                                    weight_decay=weight_decay)
        bar = _StepBar(steps, quiet or not team.is_main, "range test")
        result = lr_range_test(
            model, optimizer, spec.loss_fn, train_data, val_data=val_data if val else None,
            start_lr=start_lr, end_lr=end_lr, num_steps=steps, mode=mode,
            momentum=(high, low), batch_size=batch_size or spec.batch_size,
            metric=spec.metric, repeats=repeats, seed=seed, progress=bar.update)
        bar.close()
    except (ValueError, DisciplinedError) as err:
        raise _fail(err) from None
    if not team.is_main:  # rank 0 writes and prints
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_range.json").write_text(result.to_json())
    plot = result.plot(out / "lr_range.png")
    table = Table(title=f"LR range test on {spec.name} ({result.source} loss, "
                        f"{result.stop_reason}, {_batch_line(result.batch_size or 0)})")
    for column in ("rule", "max LR (median)", "spread over repeats"):
        table.add_column(column)
    names = {"smith": "Smith (default)", "steepest": "steepest descent",
             "min/10": "minimum / 10", "valley": "fastai valley"}
    for rule, sugg in result.suggestions.items():
        spread = sugg.spread
        table.add_row(names[rule], "-" if sugg.value is None else f"{sugg.value:.3g}",
                      "-" if spread is None else f"{spread[0]:.3g} .. {spread[1]:.3g}")
    console.print(table)
    if result.max_lr is not None:
        console.print(f"suggested: max_lr {result.max_lr:.3g}, min_lr {result.min_lr:.3g} "
                      f"(1cycle; {result.cyclic_min_lr:.3g} for cyclical LRs)")
    else:
        console.print("no clear decrease of the loss: widen the range (--start-lr, --end-lr)")
    console.print(f"wrote {out / 'lr_range.json'} and {plot}")


@app.command()
def train(
    task: TaskArg,
    max_lr: Annotated[float, typer.Option(help="Peak (or constant) learning rate.")],
    policy: Annotated[str, typer.Option(help="one-cycle, clr, sgdr, step, inv or constant.")
                      ] = "one-cycle",
    momentum: Annotated[str, typer.Option(help="max,min momentum (or beta1).")] = "0.95,0.85",
    weight_decay: Annotated[float, typer.Option("--wd", help="Weight decay.")] = 5e-4,
    epochs: Annotated[float, typer.Option(help="Training epochs.")] = 5,
    batch_size: BatchSize = None,
    out: OutDir = Path("runs/train"),
    seed: Seed = 0,
    data_dir: DataDir = None,
    quiet: Quiet = False,
) -> None:
    """Train a task with a named policy; write history.json, curves.png and model.pt."""
    from .policies import train_task
    from .tasks import load_task

    high, low = _floats(momentum, "--momentum", 2)
    team = _join_torchrun()
    try:
        spec = load_task(task, data_dir=data_dir)
        result = train_task(spec, policy=policy, max_lr=max_lr, momentum=(high, low),
                            weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
                            seed=seed, progress=not quiet and team.is_main, out=out)
    except (ValueError, DisciplinedError) as err:
        raise _fail(err) from None
    h = result.history
    for step, loss, metric in zip(h.eval_step, h.val_loss, h.val_metric, strict=True):
        extra = "" if metric is None else f"  val acc {metric:.2%}"
        console.print(f"step {step:6d}  val loss {loss:.4f}{extra}", highlight=False)
    final = h.val_metric[-1] if h.val_metric else None
    console.print(f"{policy}: {h.epochs:.1f} epochs in {h.wall_seconds:.1f} s, "
                  f"{_batch_line(batch_size or spec.batch_size)} "
                  f"({h.samples_per_second:,.0f} samples/s)"
                  + ("" if final is None else f", final val accuracy {final:.2%}"))
    console.print(f"wrote {out / 'history.json'}, {out / 'curves.png'}, {out / 'model.pt'}")


search_app = typer.Typer(help="Short comparison runs of the paper's checklist (Section 5).",
                         no_args_is_help=True)
app.add_typer(search_app, name="search")


@search_app.callback()
def _search_in_one_process() -> None:
    """Short comparison runs of the paper's checklist (Section 5)."""
    from .distributed import launched

    if launched():  # each rank would run the whole search and write the same files
        raise _fail(ValueError(
            "disciplined search runs as one process, not under torchrun: spread its trials "
            "with --executor ray, or run `disciplined tune` under torchrun"))

MaxLr = Annotated[float | None, typer.Option(help="Peak LR; default: from a range test.")]
Epochs = Annotated[float, typer.Option(help="Epochs each short run trains.")]
ExecutorKind = Annotated[str, typer.Option(
    "--executor", help="Where short runs train: local (one after another) or ray.")]
RayAddress = Annotated[str | None, typer.Option(
    "--ray-address", help="With --executor ray: auto (this machine's cluster) or HOST:PORT; "
                          "default: start Ray on this machine.")]
CpusPerTrial = Annotated[float, typer.Option("--cpus-per-trial",
                                             help="CPUs Ray reserves for each trial.")]
GpusPerTrial = Annotated[float, typer.Option("--gpus-per-trial",
                                             help="GPUs Ray reserves for each trial.")]




def _executor(kind: str, address: str | None, cpus: float, gpus: float) -> Any:
    """The Ray executor the options ask for, or None for local: each command then uses its
    own local default (tune's shows a live bar per trial)."""
    from .distributed import launched
    from .executors import make_executor

    try:
        if kind != "local" and launched():
            raise ValueError("--executor ray cannot run under torchrun: run the study with "
                             "Ray, or data-parallel under torchrun, not both")
        runner = make_executor(kind, ray_address=address, cpus_per_trial=cpus,
                               gpus_per_trial=gpus)
    except (ValueError, DisciplinedError) as err:
        raise _fail(err) from None
    return None if kind == "local" else runner


def _finish_search(result: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(result.to_json())
    plot = result.plot(out / "search.png")
    from rich.table import Table

    for comparison in result.comparisons:
        table = Table(title=result.name)
        for column in ("rank", "candidate", "val loss", "val metric", "verdict"):
            table.add_column(column)
        for r in comparison.ranking:
            table.add_row("-" if r.rank is None else str(r.rank), r.label,
                          "-" if r.val_loss is None else f"{r.val_loss:.4f}",
                          "-" if r.val_metric is None else f"{r.val_metric:.2%}",
                          r.verdict or f"failed: {r.error}")
        console.print(table)
    for key, note in result.evidence.get("notes", {}).items():
        console.print(f"{key}: {note}")
    if "scaled" in result.evidence:
        console.print(result.evidence["scaled"])
    console.print(f"decision: {result.decision} — {result.reason}")
    console.print(f"wrote {out / 'search.json'} and {plot}")


def _max_lr(task: str, max_lr: float | None, seed: int, data_dir: Path | None) -> float:
    from .searches import task_max_lr

    if max_lr is not None:
        return max_lr
    found = task_max_lr(task, seed=seed, data_dir=str(data_dir) if data_dir else None)
    console.print(f"max_lr {found:.3g} from a range test")
    return found


def _search(run: Any, out: Path) -> None:
    try:
        result = run()
    except (ValueError, DisciplinedError) as err:
        raise _fail(err) from None
    _finish_search(result, out)


@search_app.command("momentum")
def search_momentum(task: TaskArg, max_lr: MaxLr = None, epochs: Epochs = 3,
                    policy: Annotated[str, typer.Option(help="one-cycle or constant.")
                                      ] = "one-cycle",
                    weight_decay: Annotated[float, typer.Option("--wd")] = 5e-4,
                    out: OutDir = Path("runs/search-momentum"), seed: Seed = 0,
                    data_dir: DataDir = None,
                    executor: ExecutorKind = "local", ray_address: RayAddress = None,
                    cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0) -> None:
    """Momentum 0.99 / 0.97 / 0.95 / 0.9 in short runs (cycling down to 0.85 under 1cycle)."""
    from .searches import momentum_search
    from .trials import Budget

    _search(lambda: momentum_search(
        task, max_lr=_max_lr(task, max_lr, seed, data_dir), budget=Budget(epochs=epochs),
        policy=policy, weight_decay=weight_decay, seed=seed,
        data_dir=str(data_dir) if data_dir else None,
        executor=_executor(executor, ray_address, cpus_per_trial, gpus_per_trial)), out)


@search_app.command("wd")
def search_wd(task: TaskArg, max_lr: MaxLr = None, epochs: Epochs = 3,
              guess: Annotated[float | None, typer.Option(help="Prior guess of the weight "
                                                          "decay; none: 1e-3..0 grid.")] = None,
              mode: Annotated[str, typer.Option(help="grid, combined or fork.")] = "grid",
              out: OutDir = Path("runs/search-wd"), seed: Seed = 0,
              data_dir: DataDir = None,
              executor: ExecutorKind = "local", ray_address: RayAddress = None,
              cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0) -> None:
    """Weight decay: a grid, then one bisection of the exponent (or combined/fork modes)."""
    from .searches import weight_decay_search
    from .trials import Budget

    _search(lambda: weight_decay_search(
        task, max_lr=_max_lr(task, max_lr, seed, data_dir) if mode != "combined" else 1.0,
        budget=Budget(epochs=epochs), guess=guess, mode=mode, seed=seed,
        data_dir=str(data_dir) if data_dir else None,
        executor=_executor(executor, ray_address, cpus_per_trial, gpus_per_trial)), out)


@search_app.command("batch-size")
def search_batch_size(task: TaskArg,
                      sizes: Annotated[str, typer.Option(help="Comma-separated sizes.")
                                       ] = "32,64,128,256",
                      seconds: Annotated[float, typer.Option(help="Equal wall time per size.")
                                         ] = 20.0,
                      out: OutDir = Path("runs/search-batch-size"), seed: Seed = 0,
                      data_dir: DataDir = None,
                      executor: ExecutorKind = "local", ray_address: RayAddress = None,
                      cpus_per_trial: CpusPerTrial = 1.0,
                      gpus_per_trial: GpusPerTrial = 0.0) -> None:
    """Total batch sizes compared at equal wall-clock time, each with its own LR range."""
    from .searches import batch_size_search

    try:
        values = [int(v) for v in sizes.split(",")]
    except ValueError:
        raise _fail(ValueError(f"--sizes takes comma-separated ints, got {sizes!r}")) from None
    runner = _executor(executor, ray_address, cpus_per_trial, gpus_per_trial)
    _search(lambda: batch_size_search(task, sizes=values, seconds=seconds, seed=seed,
                                      data_dir=str(data_dir) if data_dir else None,
                                      executor=runner), out)


@search_app.command("schedule")
def search_schedule(task: TaskArg, max_lr: MaxLr = None, epochs: Epochs = 3,
                    out: OutDir = Path("runs/search-schedule"), seed: Seed = 0,
                    data_dir: DataDir = None,
                    executor: ExecutorKind = "local", ray_address: RayAddress = None,
                    cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0) -> None:
    """Constant, step, CLR, SGDR and 1cycle (linear, cosine), each with constant or
    cyclical momentum, at an equal budget."""
    from .searches import schedule_search
    from .trials import Budget

    _search(lambda: schedule_search(
        task, max_lr=_max_lr(task, max_lr, seed, data_dir), budget=Budget(epochs=epochs),
        seed=seed, data_dir=str(data_dir) if data_dir else None,
        executor=_executor(executor, ray_address, cpus_per_trial, gpus_per_trial)), out)


@app.command("interpolate")
def interpolate_cmd(
    state_a: Annotated[Path, typer.Argument(help="model.pt of solution a.")],
    state_b: Annotated[Path, typer.Argument(help="model.pt of solution b.")],
    task: TaskArg,
    out: OutDir = Path("runs/interpolate"),
    points: Annotated[int, typer.Option(help="Alphas from -0.5 to 1.5.")] = 21,
    recompute_bn: Annotated[bool, typer.Option("--recompute-bn",
                                               help="Re-estimate BatchNorm statistics.")
                            ] = False,
    data_dir: DataDir = None,
) -> None:
    """Training and validation loss along the line between two trained models."""
    import numpy as np
    import torch

    from .interpolate import interpolate
    from .tasks import load_task

    try:
        spec = load_task(task, data_dir=data_dir)
        a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (state_a, state_b))
        result = interpolate(a, b, spec.model, spec.datasets(), loss_fn=spec.loss_fn,
                             metric=spec.metric, alphas=np.linspace(-0.5, 1.5, points).tolist(),
                             recompute_bn=recompute_bn)
    except (ValueError, OSError, RuntimeError, DisciplinedError) as err:
        raise _fail(err) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "interpolation.json").write_text(result.to_json())
    plot = result.plot(out / "interpolation.png")
    for alpha, tl, vl in zip(result.alphas, result.train_loss, result.val_loss, strict=True):
        console.print(f"alpha {alpha:+.2f}  train loss {tl:.4f}  val loss {vl:.4f}",
                      highlight=False)
    console.print(f"wrote {out / 'interpolation.json'} and {plot}")


class _TuneProgress:
    """Stage, trial, validation loss and an ETA, one line each (plain lines with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        import time

        self.quiet, self.start = quiet, time.perf_counter()
        self.live = not quiet
        self.eta: float | None = None
        self.clock = time.perf_counter

    def plan(self, plan: dict[str, Any]) -> None:
        split = ", ".join(f"{k} ~{v:.0f} s" for k, v in plan["seconds_by_stage"].items())
        console.print(f"{self._stamp()} budget: final {plan['final_epochs']:g} epochs, short "
                      f"runs {plan['short_epochs']:g} epochs each; planned split: {split}",
                      highlight=False)

    def _stamp(self) -> str:
        elapsed = self.clock() - self.start
        eta = "" if self.eta is None else f", ETA ~{max(0.0, self.eta - elapsed):.0f} s"
        return f"[{elapsed:6.1f} s{eta}]"

    def stage(self, name: str, index: int, total: int, eta_seconds: float | None) -> None:
        if eta_seconds is not None and self.eta is None:
            self.eta = (self.clock() - self.start) + eta_seconds
        style = "" if self.quiet else "[bold cyan]"
        console.print(f"{self._stamp()} {style}stage {index}/{total}: {name}",
                      highlight=False)

    def trial(self, stage: str, result: Any) -> None:
        if result.state != "complete":
            console.print(f"{self._stamp()}   {result.label}: {result.state}: {result.error}",
                          highlight=False)
            return
        metric = "" if result.val_metric is None else f", val metric {result.val_metric:.4g}"
        verdict = result.diagnosis.verdict if result.diagnosis else "-"
        console.print(f"{self._stamp()}   {result.label}: {result.steps} steps, val loss "
                      f"{result.val_loss:.4f}{metric} ({verdict})", highlight=False)

    def decided(self, name: str, decision: dict[str, Any], reason: str,
                seconds: float) -> None:
        console.print(f"{self._stamp()}   -> {name}: {decision or ''} {reason} "
                      f"({seconds:.1f} s)", highlight=False)


@app.command()
def tune(
    task: TaskArg,
    out: OutDir = Path("runs/tune"),
    budget_minutes: Annotated[float | None, typer.Option(
        help="Wall-clock budget for everything; sizes the final training.")] = None,
    budget_epochs: Annotated[float | None, typer.Option(
        help="Final training epochs (short runs take 1/6 each).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the study in --out.")
                      ] = False,
    seed: Seed = 0,
    stages: Annotated[str | None, typer.Option(
        help="Comma-separated: range_test,batch_size,momentum,weight_decay,confirm,final "
             "(default: all but batch_size).")] = None,
    data_dir: DataDir = None,
    quiet: Quiet = False,
    executor: ExecutorKind = "local", ray_address: RayAddress = None,
    cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0,
) -> None:
    """The checklist end to end: range test, momentum, weight decay, confirm, final 1cycle."""
    from .recipe import tune as run_tune

    runner = _executor(executor, ray_address, cpus_per_trial, gpus_per_trial)
    team = _join_torchrun()  # after: Ray and torchrun do not mix
    try:
        result = run_tune(task, out=out, budget_epochs=budget_epochs,
                          budget_minutes=budget_minutes,
                          stages=None if stages is None else [s.strip()
                                                              for s in stages.split(",")],
                          resume=resume, seed=seed,
                          data_dir=str(data_dir) if data_dir else None,
                          progress=_TuneProgress(quiet or not team.is_main),
                          executor=runner)
    except (ValueError, DisciplinedError) as err:
        raise _fail(err) from None
    s = result.summary
    hp = s["hyperparameters"]
    console.print("\n[bold]chosen hyper-parameters[/]")
    for key, value in hp.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        console.print(f"  {key:13s} {shown}", highlight=False)
    final = s["final"]
    if final["val_metric"] is not None:
        console.print(f"final accuracy: [bold]{final['val_metric']:.2%}[/] (val loss "
                      f"{final['val_loss']:.4f})")
    elif final["val_loss"] is not None:
        console.print(f"final validation loss: [bold]{final['val_loss']:.4g}[/]")
    if result.reused_trials:
        console.print(f"resumed: {result.reused_trials} finished trials taken from the journal")
    console.print(f"tuned for {_batch_line(hp['batch_size'])}")
    console.print(f"total {s['wall_seconds_total']:.1f} s; report: {out / 'report.html'}")


@app.command()
def report(directory: Annotated[Path, typer.Argument(help="A tune --out folder.")]) -> None:
    """Regenerate report.html from a study's journal."""
    from .report import regenerate_report

    try:
        path = regenerate_report(directory)
    except (ValueError, DisciplinedError) as err:
        raise _fail(err) from None
    console.print(f"wrote {path}")


class _StepBar:
    def __init__(self, total: int, quiet: bool, label: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit="step", disable=quiet, leave=False)

    def update(self, step: int, total: int, loss: float) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
