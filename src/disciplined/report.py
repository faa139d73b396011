"""The study's outputs besides summary.json: a self-contained report.html (plots embedded,
no network) and train.py, a standalone script that reproduces the final training."""

from __future__ import annotations

import base64
import functools
import html
import json
from pathlib import Path
from typing import Any

from .compare import Comparison
from .defaults import MOMENTUM
from .errors import DisciplinedError
from .plot import plot_comparison, plot_history, plot_range_test, plot_schedule
from .policies import policy_schedules
from .study import Study

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 3px 10px;
border-bottom: 1px solid #eee; text-align: left; } .reason { font-style: italic; }
img { max-width: 100%; } code { background: #f4f4f4; padding: 1px 4px; }
"""


def _png(draw: Any) -> str:
    """Render a plot function (taking a path) to an inline <img> (base64 PNG)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plot.png"
        draw(path)
        data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(rows: list[list[Any]], head: list[str]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return "-" if value is None else str(value)


def _comparison(comparison: Comparison, title: str) -> list[str]:
    """A ranking's table, its curves and each run's advice."""
    results = comparison.results
    nodes = {r.label: r.worker for r in results}
    rows = [[r.rank if r.rank is not None else "failed", r.label,
             _fmt(r.val_loss), _fmt(r.val_metric), r.verdict or r.error]
            for r in comparison.ranking]
    head = ["rank", "candidate", "val loss", "val metric", "diagnosis"]
    if any(nodes.values()):  # trials ran on a Ray cluster: say where
        rows = [[*row, nodes[str(row[1])] or "driver"] for row in rows]
        head.append("Ray node")
    advice = {r.label: r.diagnosis.advice for r in results if r.diagnosis}
    return [_table(rows, head),
            _png(functools.partial(plot_comparison, comparison, title=title)),
            "<ul>" + "".join(f"<li>{html.escape(label)}: {html.escape(text)}</li>"
                             for label, text in advice.items()) + "</ul>"]


def build_report(study: Study, summary: dict[str, Any]) -> str:
    """The report as one HTML string."""
    hp = summary["hyperparameters"]
    parts = [f"<h1>disciplined tune: {html.escape(summary['task'])}</h1>",
             "<h2>Chosen hyper-parameters</h2>",
             _table([[k, _fmt(v)] for k, v in hp.items()], ["hyper-parameter", "value"])]
    final = summary["final"]
    if final.get("val_loss") is not None:
        metric = "" if final["val_metric"] is None else f", validation metric " \
            f"{final['val_metric']:.4g}"
        parts.append(f"<p>Final 1cycle training: {final['epochs']:g} epochs, validation loss "
                     f"{final['val_loss']:.4g}{metric}, {final['wall_seconds']:.1f} s.</p>")
    parts += ["<h2>Budget spent per stage</h2>",
              _table([[s["name"], s["trials"], f"{s['wall_seconds']:.1f} s",
                       _fmt(s["decision"])] for s in summary["stages"]],
                     ["stage", "trials", "wall time", "decision"]),
              f"<p>Total: {summary['wall_seconds_total']:.1f} s.</p>"]
    for stage in study.stages():
        name, outcome = stage.name, stage.outcome
        parts.append(f"<h2>Stage: {html.escape(name)}</h2>")
        parts.append(f'<p class="reason">{html.escape(outcome.reason)}</p>')
        if outcome.range_test is not None:
            result = outcome.range_test
            parts.append(_table([[rule, _fmt(s.value)] for rule, s in
                                 result.suggestions.items()], ["rule", "suggested max LR"]))
            parts.append(_png(functools.partial(plot_range_test, result)))
        if outcome.search is not None:
            fractions = outcome.search.evidence.get("fractions")
            if fractions:  # growing short runs: one ranking per length
                for fraction, comparison in zip(fractions, outcome.search.comparisons,
                                                strict=False):
                    length = "the full length" if fraction >= 1 else \
                        f"{fraction:.3g} of the final length"
                    parts.append(f"<h3>Runs of {length}</h3>")
                    parts += _comparison(comparison, f"{name}, {length}")
            else:
                results = study.trials(name)
                if results:
                    parts += _comparison(Comparison.of(results), name)
        elif name == "refine" and study.trials(name):  # the closed loop's corrections
            parts += _comparison(Comparison.of(study.trials(name)), name)
        if name == "final":
            finals = study.trials("final")
            if finals and finals[-1].history is not None:
                h = finals[-1].history
                steps = len(h.step)
                high, low = hp.get("momentum") or MOMENTUM
                lr, mom = policy_schedules("one-cycle", max(2, steps), hp["max_lr"],
                                           momentum=(high, low))
                parts.append("<h3>Final schedules (learning rate and momentum)</h3>")
                parts.append(_png(functools.partial(plot_schedule, lr=lr, momentum=mom,
                                                    title="final schedules")))
                parts.append("<h3>Training curves</h3>")
                parts.append(_png(functools.partial(plot_history, h)))
                if finals[-1].diagnosis:
                    parts.append(f"<p>Diagnosis: {html.escape(finals[-1].diagnosis.advice)}</p>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>disciplined: "
            f"{html.escape(summary['task'])}</title><style>{STYLE}</style></head><body>"
            f"{body}</body></html>")


def write_report(out: Path, study: Study) -> Path:
    summary = json.loads((out / "summary.json").read_text())
    path = out / "report.html"
    path.write_text(build_report(study, summary))
    return path


def regenerate_report(directory: str | Path) -> Path:
    """`disciplined report DIR`: rebuild report.html from the journal and summary.json."""
    out = Path(directory)
    if not (out / "study.db").exists() or not (out / "summary.json").exists():
        raise DisciplinedError(f"{out} holds no finished study (study.db and summary.json); "
                               f"run `disciplined tune TASK --out {out}` first")
    with Study(out, resume=True) as study:
        return write_report(out, study)


TRAIN_SCRIPT = '''"""Reproduce the final training chosen by `disciplined tune` ({task}) in plain
PyTorch.

Generated from summary.json; run it with `python train.py`.
"""

import torch

from disciplined import HyperScheduler, schedules
from disciplined.tasks import load_task

HP = {hp}
SEED = {seed}

task = load_task({task!r})
train_data, val_data = task.datasets()
torch.manual_seed(SEED)
model = task.model()
loader = torch.utils.data.DataLoader(train_data, batch_size=HP["batch_size"], shuffle=True,
                                     generator=torch.Generator().manual_seed(SEED))
total = max(2, round(HP["epochs"] * len(loader)))
if task.optimizer == "adamw":
    optimizer = torch.optim.AdamW(model.parameters(), lr=HP["max_lr"],
                                  betas=(HP["momentum"][0], 0.999),
                                  weight_decay=HP["weight_decay"])
else:
    optimizer = torch.optim.SGD(model.parameters(), lr=HP["max_lr"],
                                momentum=HP["momentum"][0], weight_decay=HP["weight_decay"])
scheduler = HyperScheduler(
    optimizer,
    lr=schedules.one_cycle(total, HP["max_lr"]),
    momentum=schedules.one_cycle_momentum(total, max_momentum=HP["momentum"][0],
                                          base_momentum=HP["momentum"][1]),
)
step = 0
while step < total:
    for x, y in loader:
        loss = task.loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        if step == total:
            break

model.eval()
with torch.no_grad():
    val = torch.utils.data.DataLoader(val_data, batch_size=1024)
    losses, correct, seen = 0.0, 0, 0
    for x, y in val:
        out = model(x)
        losses += float(task.loss_fn(out, y)) * len(y)
        if task.metric == "accuracy":
            correct += int((out.argmax(1) == y).sum())
        seen += len(y)
print(f"validation loss {{losses / seen:.4f}}" + (
    f", accuracy {{correct / seen:.2%}}" if task.metric == "accuracy" else ""))
torch.save(model.state_dict(), "model_reproduced.pt")
'''


def write_train_script(out: Path, summary: dict[str, Any]) -> Path:
    """train.py: the final training as a plain loop with `disciplined.schedules`, with the
    study's seed."""
    path = out / "train.py"
    path.write_text(TRAIN_SCRIPT.format(task=summary["task"], seed=summary["seed"],
                                        hp=json.dumps(summary["hyperparameters"])))
    return path
