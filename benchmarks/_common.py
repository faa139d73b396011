"""What every benchmark shares: a description of the machine and RESULTS.md sections."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from disciplined import __version__
from disciplined.trials import Budget, TrialSpec, train


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def header(title: str, command: str, extra_versions: str = "") -> list[str]:
    """The lines every RESULTS.md section starts with: date, machine, versions, command."""
    versions = f"torch {torch.__version__}, disciplined {__version__}"
    if extra_versions:
        versions += f", {extra_versions}"
    return [
        f"## {title}",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {os.cpu_count()} cores (`nproc`), {cpu_model()}, "
        f"Python {platform.python_version()}, torch threads {torch.get_num_threads()}",
        f"- versions: {versions}",
        f"- command: `{command}`",
    ]


def final_metric(task: str, max_lr: float, epochs: float, seed: int = 0,
                 policy: str = "one-cycle") -> float | None:
    """The validation metric after a full training of `task` (the whole validation set)."""
    spec = TrialSpec(task, max_lr=max_lr, budget=Budget(epochs=epochs), policy=policy,
                     seed=seed, eval_samples=None)
    return train(spec)[0].val_metric


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile); with fewer than 2 samples all equal."""
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def write_section(path: Path, mark: str, section: str) -> None:
    """Replace the section between `<!-- mark -->` markers in RESULTS.md, or append it."""
    start, end = f"<!-- {mark} -->", f"<!-- /{mark} -->"
    body = f"{start}\n{section}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)


def publish(lines: list[str], path: Path | None, mark: str) -> None:
    """Print a benchmark's section and, with `--write PATH`, put it into RESULTS.md."""
    section = "\n".join(lines)
    print(section)
    if path is not None:
        write_section(path, mark, section)


def end_of(final: dict[str, Any]) -> tuple[float | None, float | None]:
    """A tune summary's final training at its end: its validation loss and metric. Where the
    model kept an earlier evaluation's weights, those were picked on the validation set the
    scores are read on (the test set, for MNIST-1D and Fashion-MNIST): the peers are scored
    at their ends, and so is tune here."""
    if final.get("kept_step") is not None:
        return final["end_val_loss"], final["end_val_metric"]
    return final["val_loss"], final["val_metric"]
