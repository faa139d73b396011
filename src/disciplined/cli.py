"""The `disciplined` command: parse, call one library function, print. No logic of its own:
each command's work is a function in `disciplined.jobs` (or `disciplined.recipe.tune`)."""

from __future__ import annotations

import atexit
import gc
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from . import display
from .defaults import (
    END_LR,
    FALLBACK_EPOCHS,
    MOMENTUM,
    NUM_STEPS,
    OPTIMIZER_NAMES,
    START_LR,
    START_WEIGHT_DECAY,
)
from .errors import DisciplinedError

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    help="Set hyper-parameters the disciplined way (Smith 2018), then train with them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=HELP,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
MOMENTUM_TEXT = ",".join(f"{m:g}" for m in MOMENTUM)  # "0.95,0.85", as --momentum reads it

OutDir = Annotated[Path, typer.Option("--out", help="Folder for the outputs.")]
Seed = Annotated[int, typer.Option(help="Seed for weights and batch order.")]
# the choices the library's functions take (range_test.Mode, policies.Policy,
# searches.WeightDecayMode: tests/test_cli.py checks they agree), spelled here so that
# `--help` lists them without importing torch
RangeMode = Literal["exp", "linear"]
PolicyName = Literal["one-cycle", "one-cycle-cos", "clr", "sgdr", "step", "inv", "constant"]
WeightDecayModeName = Literal["grid", "combined", "fork"]
ExecutorName = Literal["local", "ray"]
AmpName = Literal["auto", "off", "bf16", "fp16"]
KeepName = Literal["last", "best"]
Amp = Annotated[AmpName, typer.Option(
    help="Autocast: auto is bf16 on a GPU that supports it (none on CPUs); off; bf16; fp16 "
         "(CUDA).")]
Compile = Annotated[bool, typer.Option("--compile", metavar="", help=(
    "Run the training forward through torch.compile (tune: the final training only; the "
    "range test and short runs stay eager)."))]
Quiet = Annotated[bool, typer.Option("--quiet", metavar="",
                                     help="No progress bar; plain log lines.")]
BatchSize = Annotated[int | None, typer.Option(min=1,
                                               help="Per process; default: the task's.")]
TaskArg = Annotated[str, typer.Argument(help="A built-in task (digits, mnist1d, mnist1d-mlp, "
                                         "fashion-mnist, fashion-mnist-mlp), a zoo task "
                                         "(zoo/NAME: see `disciplined zoo`) or a task file.")]
DataDir = Annotated[Path | None, typer.Option(help="Folder with Fashion-MNIST's IDX files.")]
Momentum = Annotated[str, typer.Option(help="max,min momentum (or beta1).")]
START_WD_TEXT = ", ".join(f"{v:g} for {OPTIMIZER_NAMES[k]}" for k, v in START_WEIGHT_DECAY.items())
WeightDecay = Annotated[float | None, typer.Option(
    "--wd", help=f"Weight decay (default: {START_WD_TEXT}).")]
MaxLr = Annotated[float | None, typer.Option(help="Peak LR; default: from a range test.")]
Epochs = Annotated[float, typer.Option(help="Epochs each short run trains.")]
ExecutorKind = Annotated[ExecutorName, typer.Option(
    "--executor", help="Where short runs train: local (one after another) or ray.")]
RayAddress = Annotated[str | None, typer.Option(
    "--ray-address", help="With --executor ray: auto (this machine's cluster) or HOST:PORT; "
                          "default: start Ray on this machine.")]
CpusPerTrial = Annotated[float, typer.Option("--cpus-per-trial",
                                             help="CPUs Ray reserves for each trial.")]
GpusPerTrial = Annotated[float, typer.Option("--gpus-per-trial",
                                             help="GPUs Ray reserves for each trial.")]


def _version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"disciplined {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, metavar="",
        help="Print the version and exit.")] = False) -> None:
    """Set hyper-parameters the disciplined way (Smith 2018), then train with them."""


def _fail(err: Exception) -> NoReturn:
    """A library error as one line on stderr, exit code 2 (rich markup in it is escaped)."""
    errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
    _failing()
    raise typer.Exit(code=2)


def _failing() -> None:
    """Under torchrun, this rank leaves without waiting for the others (which may never
    come: `distributed.failing`). Not imported yet: no group to leave, and no torch to load
    only to say so."""
    distributed = sys.modules.get(f"{__package__}.distributed")
    if distributed is not None:
        distributed.failing()


def _call(job: Callable[[], T], also: tuple[type[Exception], ...] = (),
          interrupted: str = "nothing was written") -> T:
    """Run a library call; the errors a user can fix (ValueError, DisciplinedError and the
    command's `also`) become one line, not a traceback; Ctrl-C says what was kept
    (`interrupted`) and exits 130, as shells expect of SIGINT."""
    try:
        return job()
    except (ValueError, DisciplinedError) as err:
        _fail(err)
    except also as err:
        _fail(err)
    except KeyboardInterrupt:
        errors.print(f"[bold]interrupted:[/] {escape(interrupted)}", highlight=False)
        _failing()
        raise typer.Exit(code=130) from None


def _is_main() -> bool:
    """Join torchrun's process group when launched by it; whether this process prints."""
    from .distributed import init_from_env

    return _call(init_from_env).is_main


def _momentum(text: str) -> tuple[float, float]:
    """--momentum MAX,MIN: two numbers in [0, 1), as torch's SGD and Adam's beta1 need."""
    try:
        high, low = (float(v) for v in text.split(","))
    except ValueError:
        _fail(ValueError(f"--momentum takes 2 comma-separated numbers, got {text!r}"))
    if not (0 <= high < 1 and 0 <= low < 1):
        _fail(ValueError(f"--momentum values must lie in [0, 1), got {text!r} (e.g. 0.95,0.85)"))
    return high, low


def _dir(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _wrote(files: tuple[Path, ...]) -> None:
    if files:
        console.print("wrote " + ", ".join(str(f) for f in files), highlight=False)


def _batch_line(per_process: int) -> str:
    from .distributed import world

    size = world().size
    if size == 1:
        return f"batch {per_process}"
    return f"total batch {per_process * size} ({per_process} per process x {size} processes)"


class _StepBar:
    """A tqdm bar fed by a (step, total, loss) callback; drawn from the first step on, so
    that an argument refused before any work leaves no empty bar above its error. With
    `quiet`, a plain line every tenth of the run instead (a log shows it is alive)."""

    def __init__(self, total: int, quiet: bool, label: str, silent: bool = False) -> None:
        self.total, self.quiet, self.label, self.silent = total, quiet, label, silent
        self.bar: Any = None
        self.done = 0

    def update(self, step: int, total: int, loss: float) -> None:
        self.done += 1
        if self.silent:
            return
        if self.quiet:
            if self.done % max(1, self.total // 10) == 0 or self.done == self.total:
                console.print(f"{self.label}: {self.done}/{self.total} steps, loss "
                              f"{display.number(loss)}", highlight=False)
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.label, unit="step", leave=False,
                            disable=None)  # None: no bar where stderr is not a terminal
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@app.command()
def demo(
    out: OutDir = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    max_lr: Annotated[float, typer.Option(help="1cycle's peak learning rate.")] = 0.3,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Train a small CNN on the bundled digits with 1cycle and cyclical momentum, then at a
    constant LR, from the same weights."""
    from .jobs import demo as run_demo

    def show(label: str, epoch: int, loss: float, accuracy: float | None) -> None:
        console.print(f"  {label}: epoch {epoch:2d}/{epochs}  val loss {display.number(loss)}  "
                      f"accuracy {display.percent(accuracy)}", highlight=False)

    job = _call(lambda: run_demo(out=out, epochs=epochs, max_lr=max_lr, seed=seed,
                                 progress=not quiet, on_eval=show))
    d = job.result
    console.print(f"1cycle: lr {d.lr(0):g} -> {max_lr:g} -> {d.lr.bounds()[0]:.2g}, momentum "
                  f"{d.momentum(0):g} -> {d.momentum.bounds()[0]:g} -> {d.momentum(0):g}, "
                  f"{len(d.one_cycle.step)} steps")
    console.print(
        f"final validation accuracy: 1cycle [bold]{d.one_cycle.val_metric[-1] or 0.0:.2%}[/] "
        f"({d.one_cycle.wall_seconds:.1f} s) vs constant LR {d.constant.val_metric[-1] or 0:.2%} "
        f"at the same max LR")
    console.print(f"schedule plot: {job.files[0]}")


@app.command()
def zoo() -> None:
    """List the zoo: tasks of kinds beyond image classifiers, to run as `zoo/NAME` (for example
    `disciplined tune zoo/transformer_parity`) and compare with benchmarks/zoo_reference."""
    from . import zoo as the_zoo

    width = max(len(t.name) for t in the_zoo.ZOO)
    for task in the_zoo.ZOO:
        console.print(f"zoo/{task.name:<{width}}  {task.split:<4}  {task.kind:<14}  "
                      f"{task.optimizer:<5}  {task.covers}", highlight=False)


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
    log_y: Annotated[bool, typer.Option("--log-y", metavar="",
                                        help="Log-scale the value axis.")] = False,
) -> None:
    """Build a schedule, print it as JSON, and optionally plot it."""
    from .jobs import build_schedule

    kwargs = {}
    for arg in args or []:
        key, sep, value = arg.partition("=")
        if not sep:
            _fail(ValueError(f"arguments are key=value, got {arg!r}"))
        kwargs[key] = _parse_value(value)
    job = _call(lambda: build_schedule(name, kwargs, out=out, steps=steps, log_y=log_y),
                also=(TypeError,))  # a keyword the constructor does not take
    console.print_json(json.dumps(job.result.to_dict()))
    if job.files:
        console.print(f"plot: {job.files[0]}")


@app.command("find-lr")
def find_lr(
    task: TaskArg,
    out: OutDir = Path("runs/find-lr"),
    val: Annotated[bool, typer.Option("--val", metavar="", help="Read the validation loss "
                                                                  "(Smith's choice).")] = False,
    start_lr: Annotated[float, typer.Option(help="First LR of the sweep.")] = START_LR,
    end_lr: Annotated[float, typer.Option(help="Last LR of the sweep.")] = END_LR,
    steps: Annotated[int, typer.Option(help="Optimizer steps in the sweep.")] = NUM_STEPS,
    mode: Annotated[RangeMode, typer.Option(help="LR spacing.")] = "exp",
    repeats: Annotated[int, typer.Option(help="Sweeps with different data orders.")] = 1,
    momentum: Annotated[str, typer.Option(help="Momentum swept from,to during the test.")
                        ] = MOMENTUM_TEXT,
    weight_decay: WeightDecay = None,
    batch_size: BatchSize = None,
    seed: Seed = 0,
    data_dir: DataDir = None,
    quiet: Quiet = False,
) -> None:
    """Run the LR range test; write lr_range.json and lr_range.png; print the suggestions."""
    from rich.table import Table

    from .jobs import find_lr as run_find_lr

    pair = _momentum(momentum)
    main = _is_main()
    bar = _StepBar(steps * repeats, quiet, "range test", silent=not main)
    try:
        job = _call(lambda: run_find_lr(
            task, out=out, val=val, start_lr=start_lr, end_lr=end_lr, steps=steps,
            mode=mode, repeats=repeats, momentum=pair,
            weight_decay=weight_decay, batch_size=batch_size, seed=seed,
            data_dir=_dir(data_dir), progress=bar.update))
    finally:
        bar.close()
    if not main:
        return
    result = job.result
    decay = "" if result.weight_decay is None else f", weight decay {result.weight_decay:g}"
    table = Table(title=f"LR range test on {task} ({result.source} loss, "
                        f"{result.stop_reason}, {_batch_line(result.batch_size or 0)}{decay})")
    for column in ("rule", "max LR (median)", "spread over repeats"):
        table.add_column(column)
    names = {"smith": "Smith (default)", "steepest": "steepest descent",
             "min/10": "minimum / 10", "valley": "fastai valley"}
    for rule, sugg in result.suggestions.items():
        spread = sugg.spread
        table.add_row(names[rule], "-" if sugg.value is None else f"{sugg.value:.3g}",
                      "-" if spread is None else f"{spread[0]:.3g} .. {spread[1]:.3g}")
    console.print(table)
    reading = result.reading
    if reading.conclusive and result.max_lr is not None:
        console.print(f"conclusive: {reading.why}")
        console.print(f"suggested: max_lr {result.max_lr:.3g}, min_lr {result.min_lr:.3g} "
                      f"(1cycle; {result.cyclic_min_lr:.3g} for cyclical LRs)")
    elif reading.conclusive:
        console.print(f"{reading.why}, but Smith's rule found no stretch where it still falls "
                      "clearly: widen the range (--start-lr, --end-lr)", highlight=False)
    else:
        from .recipe import LONGER_SWEEP

        console.print(f"cannot tell: {reading.why}.", highlight=False)
        console.print(f"The rules' numbers above are not to be trusted. `disciplined tune {task}`"
                      f" sweeps {NUM_STEPS * LONGER_SWEEP} steps where {NUM_STEPS} cannot "
                      f"tell, then tries max LRs around what its sweep reads (this one's "
                      f"anchor: {reading.anchor:.3g}) by short runs that grow until they can "
                      "tell; or widen the sweep (--start-lr, --end-lr, --steps).",
                      highlight=False)
    _wrote(job.files)


@app.command()
def train(
    task: TaskArg,
    max_lr: Annotated[float, typer.Option(help="Peak (or constant) learning rate.")],
    policy: Annotated[PolicyName, typer.Option(help="The LR (and momentum) policy.")
                      ] = "one-cycle",
    momentum: Momentum = MOMENTUM_TEXT,
    weight_decay: WeightDecay = None,
    epochs: Annotated[float | None, typer.Option(
        help="Training epochs; default: the task's own (a task file's `epochs`, as tune's "
             f"final training), else {FALLBACK_EPOCHS}.", show_default=False)] = None,
    batch_size: BatchSize = None,
    out: OutDir = Path("runs/train"),
    seed: Seed = 0,
    data_dir: DataDir = None,
    quiet: Quiet = False,
    amp: Amp = "auto",
    compile: Compile = False,
    keep: Annotated[KeepName, typer.Option(help=(
        "The weights model.pt gets: the last step's, or best: those of the lowest "
        "validation loss where the curve overfit, was unstable or diverged after it and "
        "they score no lower by the task's metric (a pick on the validation set), else the "
        "last step's. history.json and curves.png show the whole run; the command says "
        "which step model.pt holds. Our engine's tasks only."))] = "last",
) -> None:
    """Train a task with a named policy; write history.json, curves.png and model.pt."""
    from .jobs import train as run_train

    pair = _momentum(momentum)
    main = _is_main()
    job = _call(lambda: run_train(task, max_lr=max_lr, out=out, policy=policy, momentum=pair,
                                  weight_decay=weight_decay, epochs=epochs,
                                  batch_size=batch_size, seed=seed, data_dir=_dir(data_dir),
                                  progress=not quiet and main and sys.stderr.isatty(),
                                  amp=amp, compile=compile, keep=keep))
    if not main:
        return
    h = job.result.history
    if h is None:
        return
    for step, loss, metric in zip(h.eval_step, h.val_loss, h.val_metric, strict=True):
        extra = "" if metric is None else f"  accuracy {display.percent(metric)}"
        console.print(f"step {step:6d}  val loss {display.number(loss)}{extra}",
                      highlight=False)
    final = h.val_metric[-1] if h.val_metric else None
    last = h.val_loss[-1] if h.val_loss else None
    console.print(f"{policy}: {display.epochs(round(h.epochs, 2))} in {h.wall_seconds:.1f} s, "
                  f"{_batch_line(job.result.spec.batch_size or 0)} "
                  f"({h.samples_per_second:,.0f} samples/s)"
                  + ("" if last is None else f", final val loss {display.number(last)}")
                  + ("" if final is None else f", final val accuracy {display.percent(final)}"))
    reading = job.result.diagnosis
    if reading is not None and reading.verdict != "inconclusive":
        console.print(f"the validation curve: {reading.advice}", highlight=False)
    kept = job.result.kept
    if kept is not None:
        accuracy = "" if kept.val_metric is None else \
            f", accuracy {display.percent(kept.val_metric)}"
        console.print(f"model.pt holds the weights of step {kept.step}, the lowest validation "
                      f"loss ({display.number(kept.val_loss)}{accuracy}; picked on the "
                      "validation set), not the end's (--keep best)", highlight=False)
    elif keep == "best":
        console.print("model.pt holds the end's weights: no earlier evaluation was lower after "
                      "which the curve overfit, was unstable or diverged"
                      + ("" if job.result.val_metric is None else ", without a lower accuracy")
                      + " (--keep best)", highlight=False)
    _wrote(job.files)
    if h.stop_reason == "diverged":  # the files above say so too; the exit code must
        before = "" if kept is None else \
            f" (model.pt holds step {kept.step}'s weights, from before it)"
        console.print(f"[bold red]diverged:[/] the training loss stopped being finite at step "
                      f"{len(h.step)} of the planned run{before}; the numbers above are not a "
                      f"result. Lower --max-lr (try {max_lr / 10:g}), or check the task's "
                      "loss and data.")
        raise typer.Exit(1)


search_app = typer.Typer(help="Short comparison runs of the paper's checklist (Section 5).",
                         no_args_is_help=True, context_settings=HELP)
app.add_typer(search_app, name="search")


def _executor(kind: str, address: str | None, cpus: float, gpus: float) -> Any:
    """The executor the options name; None for local, so each command uses its own local
    default (tune's shows a live bar per trial)."""
    from .executors import make_executor

    runner = _call(lambda: make_executor(kind, ray_address=address, cpus_per_trial=cpus,
                                         gpus_per_trial=gpus))
    return None if kind == "local" else runner


def _search_executor(kind: str, address: str | None, cpus: float, gpus: float,
                     quiet: bool) -> Any:
    """The executor of a search command: a live bar per short run (none with --quiet) and a
    line as each one ends, so a search of minutes is never silent."""
    from .executors import make_executor

    def finished(result: Any) -> None:
        if result.state != "complete":
            console.print(f"  {result.label}: {result.state}: {result.error}", highlight=False)
            return
        metric = "" if result.val_metric is None else \
            f", accuracy {display.percent(result.val_metric)}"
        console.print(f"  {result.label}: {result.steps} steps in {result.seconds:.1f} s, val "
                      f"loss {display.number(result.val_loss)}{metric}", highlight=False)

    return _call(lambda: make_executor(kind, ray_address=address, cpus_per_trial=cpus,
                                       gpus_per_trial=gpus, progress=not quiet,
                                       on_result=finished))


def _say_range_test(max_lr: float | None) -> None:
    if max_lr is None:
        console.print("no --max-lr given: a range test finds it first", highlight=False)


def _print_search(job: Any) -> None:
    from rich.table import Table

    result = job.result
    for comparison in result.comparisons:
        table = Table(title=result.name)
        for column in ("rank", "candidate", "val loss", "accuracy", "verdict"):
            table.add_column(column)
        for r in comparison.ranking:
            table.add_row("-" if r.rank is None else str(r.rank), r.label,
                          display.number(r.val_loss), display.percent(r.val_metric),
                          r.verdict or f"failed: {r.error}")
        console.print(table)
    for note in result.notes:
        console.print(note, highlight=False)
    console.print(f"decision: {result.decision.describe()} — {result.reason}", highlight=False)
    _wrote(job.files)


@search_app.command("momentum")
def search_momentum(task: TaskArg, max_lr: MaxLr = None, epochs: Epochs = 3,
                    policy: Annotated[Literal["one-cycle", "constant"], typer.Option(
                        help="1cycle (momentum cycles) or a constant LR (momentum held).")
                                      ] = "one-cycle",
                    weight_decay: WeightDecay = None,
                    out: OutDir = Path("runs/search-momentum"), seed: Seed = 0,
                    data_dir: DataDir = None,
                    executor: ExecutorKind = "local", ray_address: RayAddress = None,
                    cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0,
                    batch_size: BatchSize = None, quiet: Quiet = False) -> None:
    """Momentum 0.99 / 0.97 / 0.95 / 0.9 in short runs (cycling down to 0.85 under 1cycle)."""
    from .jobs import search_momentum as run

    runner = _search_executor(executor, ray_address, cpus_per_trial, gpus_per_trial, quiet)
    _say_range_test(max_lr)
    _print_search(_call(lambda: run(task, out=out, epochs=epochs, max_lr=max_lr, policy=policy,
                                    weight_decay=weight_decay, seed=seed,
                                    data_dir=_dir(data_dir), batch_size=batch_size,
                                    executor=runner)))


@search_app.command("wd")
def search_wd(task: TaskArg, max_lr: MaxLr = None, epochs: Epochs = 3,
              guess: Annotated[float | None, typer.Option(help="Prior guess of the weight "
                                                          "decay; none: 1e-3..0 grid.")] = None,
              mode: Annotated[WeightDecayModeName, typer.Option(
                  help="grid; combined (each value's own range test); fork (one shared "
                       "start)")] = "grid",
              out: OutDir = Path("runs/search-wd"), seed: Seed = 0,
              data_dir: DataDir = None,
              executor: ExecutorKind = "local", ray_address: RayAddress = None,
              cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0,
              batch_size: BatchSize = None, quiet: Quiet = False) -> None:
    """Weight decay: a grid, then one bisection of the exponent (or combined/fork modes)."""
    from .jobs import search_weight_decay as run

    runner = _search_executor(executor, ray_address, cpus_per_trial, gpus_per_trial, quiet)
    _say_range_test(max_lr)
    _print_search(_call(lambda: run(task, out=out, epochs=epochs, max_lr=max_lr, guess=guess,
                                    mode=mode,
                                    seed=seed, data_dir=_dir(data_dir), batch_size=batch_size,
                                    executor=runner)))


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
                      gpus_per_trial: GpusPerTrial = 0.0, quiet: Quiet = False) -> None:
    """Total batch sizes compared at equal wall-clock time, each with its own LR range."""
    from .jobs import search_batch_size as run

    try:
        values = [int(v) for v in sizes.split(",")]
    except ValueError:
        _fail(ValueError(f"--sizes takes comma-separated ints, got {sizes!r}"))
    runner = _search_executor(executor, ray_address, cpus_per_trial, gpus_per_trial, quiet)
    console.print(f"each size: a range test, then {seconds:g} s of training", highlight=False)
    _print_search(_call(lambda: run(task, out=out, sizes=values, seconds=seconds, seed=seed,
                                    data_dir=_dir(data_dir), executor=runner)))


@search_app.command("schedule")
def search_schedule(task: TaskArg, max_lr: MaxLr = None, epochs: Epochs = 3,
                    out: OutDir = Path("runs/search-schedule"), seed: Seed = 0,
                    data_dir: DataDir = None,
                    executor: ExecutorKind = "local", ray_address: RayAddress = None,
                    cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0,
                    batch_size: BatchSize = None, quiet: Quiet = False) -> None:
    """Constant, step, CLR, SGDR and 1cycle (linear, cosine), each with constant or
    cyclical momentum, at an equal budget."""
    from .jobs import search_schedule as run

    runner = _search_executor(executor, ray_address, cpus_per_trial, gpus_per_trial, quiet)
    _say_range_test(max_lr)
    _print_search(_call(lambda: run(task, out=out, epochs=epochs, max_lr=max_lr, seed=seed,
                                    data_dir=_dir(data_dir), batch_size=batch_size,
                                    executor=runner)))


@app.command("interpolate")
def interpolate_cmd(
    state_a: Annotated[Path, typer.Argument(help="model.pt of solution a.")],
    state_b: Annotated[Path, typer.Argument(help="model.pt of solution b.")],
    task: TaskArg,
    out: OutDir = Path("runs/interpolate"),
    points: Annotated[int, typer.Option(help="Alphas from -0.5 to 1.5.")] = 21,
    recompute_bn: Annotated[bool, typer.Option("--recompute-bn", metavar="",
                                               help="Re-estimate BatchNorm statistics.")
                            ] = False,
    data_dir: DataDir = None,
) -> None:
    """Training and validation loss along the line between two trained models."""
    from .jobs import interpolate_models

    job = _call(lambda: interpolate_models(state_a, state_b, task, out=out, points=points,
                                           recompute_bn=recompute_bn, data_dir=_dir(data_dir)),
                also=(OSError, RuntimeError))  # a missing file; states of another model
    r = job.result
    for alpha, tl, vl in zip(r.alphas, r.train_loss, r.val_loss, strict=True):
        console.print(f"alpha {alpha:+.2f}  train loss {display.number(tl)}  val loss "
                      f"{display.number(vl)}",
                      highlight=False)
    _wrote(job.files)


class _TuneProgress:
    """Stage, trial, validation loss and an ETA, one line each (plain lines with --quiet);
    `silent` (the other ranks under torchrun) prints nothing: rank 0 speaks for all. Times
    count from `start` (the budget's clock), else from now."""

    def __init__(self, quiet: bool, silent: bool = False, start: float | None = None) -> None:
        self.quiet, self.silent = quiet or silent, silent
        self.start = time.perf_counter() if start is None else start
        self.live = not self.quiet
        self.eta: float | None = None

    def _say(self, line: str) -> None:
        if not self.silent:
            console.print(line, highlight=False)

    def plan(self, plan: Any) -> None:
        budget = f"{plan.budget_seconds:.0f} s in all" if plan.budget_seconds is not None \
            else f"{plan.budget_units:.3g} final trainings' worth of runs"
        self._say(f"{self._stamp()} budget: {budget}; the final training "
                  f"{plan.final_epochs:g} epochs ({plan.final_steps} steps at "
                  f"~{plan.step_seconds * 1000:.3g} ms); short runs grow until they can tell")

    def _stamp(self) -> str:
        elapsed = time.perf_counter() - self.start
        left = None if self.eta is None else self.eta - elapsed
        eta = "" if left is None else f", ETA ~{left:.0f} s" if left >= 1 else \
            ", finishing"
        return f"[{elapsed:6.1f} s{eta}]"

    def stage(self, name: str, index: int, total: int, eta_seconds: float | None) -> None:
        if eta_seconds is not None:  # re-planned after each stage from what stages cost
            self.eta = (time.perf_counter() - self.start) + eta_seconds
        style = "" if self.quiet else "[bold cyan]"
        self._say(f"{self._stamp()} {style}stage {index}/{total}: {name}")

    def trial(self, stage: str, result: Any) -> None:
        if result.state != "complete":
            self._say(f"{self._stamp()}   {result.label}: {result.state}: {result.error}")
            return
        metric = "" if result.val_metric is None else \
            f", accuracy {display.percent(result.val_metric)}"
        verdict = result.diagnosis.verdict if result.diagnosis else "-"
        self._say(f"{self._stamp()}   {result.label}: {result.steps} steps, val loss "
                  f"{display.number(result.val_loss)}{metric} ({verdict})")

    def decided(self, record: Any) -> None:
        decision = record.outcome.decision.describe()
        self._say(f"{self._stamp()}   -> {record.name}: "
                  f"{decision + '. ' if decision else ''}{record.outcome.reason} "
                  f"({record.seconds:.1f} s)")


@app.command()
def tune(
    ctx: typer.Context,
    task: TaskArg,
    out: OutDir = Path("runs/tune"),
    budget_minutes: Annotated[float | None, typer.Option(
        help="Wall-clock budget for everything from the command's start, tuning and final "
             "training together; the final training is shortened to fit it, never made "
             "longer than the task's epochs.")] = None,
    budget_epochs: Annotated[float | None, typer.Option(
        help="Final training epochs; default: the task's own (a task file's `epochs`; "
             "digits 10, mnist1d 30, fashion-mnist 4, a zoo task its file's), else 10. "
             "Tuning then spends about 3 final trainings' worth of short runs.")] = None,
    resume: Annotated[bool, typer.Option("--resume", metavar="",
                                         help="Continue the study in --out.")] = False,
    seed: Seed = 0,
    stages: Annotated[str | None, typer.Option(
        help="Comma-separated, from range_test, batch_size, lr, momentum, weight_decay, "
             "confirm, final, refine (default: range_test,lr,momentum,weight_decay,final,"
             "refine).")] = None,
    data_dir: DataDir = None,
    quiet: Quiet = False,
    executor: ExecutorKind = "local", ray_address: RayAddress = None,
    cpus_per_trial: CpusPerTrial = 1.0, gpus_per_trial: GpusPerTrial = 0.0,
    amp: Amp = "auto",
    compile: Compile = False,
) -> None:
    """The checklist end to end: range test, momentum, weight decay, confirm, final 1cycle."""
    from .recipe import tune as run_tune

    runner = _executor(executor, ray_address, cpus_per_trial, gpus_per_trial)
    main = _is_main()  # after: Ray and torchrun do not mix
    again = [*sys.argv[1:], *([] if resume else ["--resume"])]
    kept = (f"every finished trial and stage is kept in {out / 'study.db'}; continue "
            f"where it stopped with: {shlex.join(['disciplined', *again])}")
    # when the command began (`main`), so that --budget-minutes counts importing torch as the
    # user's clock does (about a second: over 5% of a 20-second budget); none where the app
    # is called in-process (tests, a notebook): the budget then counts from tune's call
    began = (ctx.obj or {}).get("began")
    result = _call(lambda: run_tune(
        task, out=out, budget_epochs=budget_epochs, budget_minutes=budget_minutes,
        stages=None if stages is None else [s.strip() for s in stages.split(",")],
        resume=resume, seed=seed, data_dir=_dir(data_dir),
        progress=_TuneProgress(quiet, silent=not main, start=began), executor=runner,
        command=shlex.join(["disciplined", *sys.argv[1:]]), amp=amp, compile=compile,
        started=began),
        interrupted=kept)
    if not main:
        return
    s = result.summary
    hp = s["hyperparameters"]
    console.print("\n[bold]chosen hyper-parameters[/]")
    if s.get("optimizer"):  # named, so that a misread task file shows here
        console.print(f"  {'optimizer':13s} {s['optimizer']} (the task's)",
                      highlight=False)
    for key, value in hp.items():
        console.print(f"  {key:13s} {display.hyperparameter(key, value)}", highlight=False)
    final = s["final"]
    if final["val_metric"] is not None:
        console.print(f"final accuracy: [bold]{display.percent(final['val_metric'])}[/] "
                      f"(val loss {display.number(final['val_loss'])}){display.kept(final)}")
    elif final["val_loss"] is not None:
        console.print(f"final validation loss: [bold]{display.number(final['val_loss'])}[/]"
                      f"{display.kept(final)}")
    if result.reused_trials:
        console.print(f"resumed: {result.reused_trials} finished trials taken from the journal")
    console.print(f"tuned for {_batch_line(hp['batch_size'])}")
    # the command's own clock where it has one: it counts the report's writing too
    took = s["wall_seconds_total"] if began is None else time.perf_counter() - began
    budget = "" if s["budget_seconds"] is None else f" (the budget: {s['budget_seconds']:.0f} s)"
    console.print(f"total {took:.1f} s{budget}; report: {out / 'report.html'}")


@app.command()
def report(directory: Annotated[Path, typer.Argument(help="A tune --out folder.")]) -> None:
    """Regenerate report.html from a study's journal."""
    from .report import regenerate_report

    console.print(f"wrote {_call(lambda: regenerate_report(directory))}")


def _quick_exit() -> None:
    """Collect the garbage there is now, then exempt every object left from the collector.
    At exit the interpreter's own collections walk every object torch and matplotlib hold,
    to free memory the process is about to give back: 0.85 s after a 3.4 s `tune` on
    multilabel_mlp, outside any --budget-minutes, against 0.3 s so. The garbage collected
    here has its finalizers run, as at a normal exit; what module teardown orphans later is
    freed or not as Python's shutdown never promised (`object.__del__`)."""
    gc.collect()
    gc.freeze()


def main() -> None:
    atexit.unregister(_quick_exit)  # once, however often main runs in one process
    atexit.register(_quick_exit)
    app(obj={"began": time.perf_counter()})


if __name__ == "__main__":
    main()
