"""The `disciplined` command: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from . import schedules
from .errors import DisciplinedError

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


def _fail(err: Exception) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {err}", highlight=False)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
