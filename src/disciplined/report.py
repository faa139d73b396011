"""The study's outputs besides summary.json: a self-contained report.html (plots embedded,
no network) and train.py, a standalone script that reproduces the final training."""

from __future__ import annotations

import base64
import functools
import html
import json
import math
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from . import display
from .compare import Comparison
from .decisions import Decision
from .defaults import MOMENTUM
from .errors import DisciplinedError
from .plot import plot_comparison, plot_history, plot_range_test, plot_schedule
from .policies import policy_schedules
from .study import StageRecord, Study
from .trials import TrialSpec

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 1.5em auto; padding: 0 1em;
color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; overflow-wrap: anywhere; } h2 { margin-top: 2em; border-bottom: 1px solid
#ddd; } .scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 3px 10px;
border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
tr.chosen td { background: #e8f4e8; font-weight: bold; } .reason { font-style: italic; }
.note { color: #555; } img { max-width: 100%; height: auto; } .meta { color: #555; }
code { background: #f4f4f4; padding: 1px 4px; overflow-wrap: anywhere; }
.plot { overflow-x: auto; max-width: 100%; }
@media (max-width: 640px) { .plot img { max-width: none; width: 720px; } }
"""


def _png(draw: Callable[[Path], Any], alt: str) -> str:
    """Render a plot function (taking a path) to an inline <img> (base64 PNG)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plot.png"
        draw(path)
        data = base64.b64encode(path.read_bytes()).decode()
    return (f'<div class="plot"><img alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}"></div>')


# How a section puts a picture in: `_png` draws it; `pictures` only counts the calls.
Png = Callable[[Callable[[Path], Any], str], str]


def _table(rows: list[list[Any]], head: list[str], chosen: Collection[int] = ()) -> str:
    """A table (in a box that scrolls sideways on a narrow screen); rows in `chosen` are
    highlighted."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(("<tr class='chosen'>" if i in chosen else "<tr>")
                   + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for i, row in enumerate(rows))
    return f"<div class='scroll'><table><tr>{cells}</tr>{body}</table></div>"


def _decision(data: dict[str, Any]) -> str:
    return Decision.from_dict(data).describe() or "-"


def _matches(spec: TrialSpec, decision: Decision) -> bool:
    """Whether a trial trained at the values a decision sets (the one it chose)."""
    pairs = [(decision.max_lr, spec.max_lr), (decision.weight_decay, spec.weight_decay),
             (decision.batch_size, spec.batch_size)]
    if decision.momentum is not None:
        pairs += list(zip(decision.momentum, spec.momentum, strict=True))
    set_ = [(a, b) for a, b in pairs if a is not None]
    return bool(set_) and all(b is not None and math.isclose(a, b, rel_tol=1e-9)
                              for a, b in set_)


def _comparison(comparison: Comparison, title: str, decision: Decision,
                picture: bool = True, png: Png = _png) -> list[str]:
    """A ranking's table (the chosen run highlighted, ties said), its curves (with
    `picture`) and advice."""
    results = comparison.results
    nodes = {r.label: r.worker for r in results}
    specs = {r.label: r.spec for r in results}
    rows, chosen = [], set()
    for i, r in enumerate(comparison.ranking):
        rank = "failed" if r.rank is None else f"{r.rank}{' (tied)' if r.tied_with else ''}"
        picked = _matches(specs[r.label], decision)
        if picked:
            chosen.add(i)
        rows.append([rank, r.label + (" (chosen)" if picked else ""),
                     display.number(r.val_loss), display.percent(r.val_metric),
                     r.verdict or r.error])
    head = ["rank", "candidate", "val loss", "accuracy", "diagnosis"]
    if any(nodes.values()):  # trials ran on a Ray cluster: say where
        rows = [[*row, nodes[r.label] or "driver"]
                for row, r in zip(rows, comparison.ranking, strict=True)]
        head.append("Ray node")
    parts = [_table(rows, head, chosen)]
    if picture:
        parts.append(png(functools.partial(plot_comparison, comparison, title=title),
                         f"validation loss of each run: {title}"))
    # a full-length run's underfitting is its own: only a short one's is its length
    short_underfit = [i for i in chosen if comparison.ranking[i].verdict == "underfitting"
                      and not comparison.ranking[i].label.endswith("@ full")]
    if short_underfit:
        parts.append("<p class='note'>The chosen run is diagnosed underfitting: a run shorter "
                     "than the final training stops before its LR has annealed, and so still "
                     "looks it. The ranking reads the validation loss, which tells the runs "
                     "apart all the same; the final training's own diagnosis is the one the "
                     "recipe acts on (stage refine).</p>")
    advice = {r.label: r.diagnosis.advice for r in results if r.diagnosis}
    parts.append("<ul>" + "".join(f"<li>{html.escape(label)}: {html.escape(text)}</li>"
                                  for label, text in advice.items()) + "</ul>")
    return parts


def _header(summary: dict[str, Any]) -> list[str]:
    versions = summary.get("versions") or {}
    made = ", ".join(f"{k} {v}" for k, v in versions.items())
    command = summary.get("command")
    lines = [f"<h1>disciplined tune: {html.escape(summary['task'])}</h1>",
             "<p class='meta'>"
             + (f"Command: <code>{html.escape(command)}</code><br>" if command else
                "Run from Python (<code>disciplined.tune</code>).<br>")
             + f"Seed {summary['seed']}"
             + (f"; finished {html.escape(summary['finished'])}" if summary.get("finished")
                else "")
             + (f"; {html.escape(made)}" if made else "") + ".</p>"]
    return lines


def _final_note(study: Study, diagnosis: str) -> str:
    """What the recipe did about the final training's diagnosis: a verdict left unexplained
    reads as a contradiction (we chose it, and then call it unstable)."""
    refine = study.finished_stage("refine")
    if diagnosis == "balanced":
        return ""
    if refine is None:
        return ("<p class='note'>The refine stage, which acts on this diagnosis with a "
                "full-length training, was not run.</p>")
    return (f"<p class='note'>The refine stage acted on this diagnosis: "
            f"{html.escape(refine.outcome.reason)}.</p>")


def pictures(study: Study, record: StageRecord) -> int:
    """How many pictures the report draws for a finished stage: its section built without
    drawing, the pictures counted. The budget reserves their drawing time: a stage that
    drew nothing gives its part back."""
    calls: list[str] = []

    def count(draw: Callable[[Path], Any], alt: str) -> str:
        calls.append(alt)
        return ""

    _stage_section(study, record, {}, png=count)
    return len(calls)


def _final_schedules(path: Path, steps: int, hp: Mapping[str, Any]) -> Path:
    """The final training's LR and momentum schedules, as its hyper-parameters say."""
    high, low = hp.get("momentum") or MOMENTUM
    lr, mom = policy_schedules("one-cycle", max(2, steps), hp["max_lr"], momentum=(high, low))
    return plot_schedule(path, lr=lr, momentum=mom, title="final schedules")


def _stage_section(study: Study, stage: StageRecord, hp: Mapping[str, Any],
                   png: Png = _png) -> list[str]:
    """A stage's part of the report: its reason, its range test, its rankings (the curves
    of the longest runs only), the final's schedules and curves. `hp` is the summary's
    hyper-parameters, which the final's schedules are drawn from."""
    name, outcome = stage.name, stage.outcome
    parts = [f"<h2>Stage: {html.escape(name)}</h2>",
             f'<p class="reason">{html.escape(outcome.reason)}</p>']
    if outcome.range_test is not None:
        result = outcome.range_test
        parts.append(_table([[rule, display.number(s.value)] for rule, s in
                             result.suggestions.items()], ["rule", "suggested max LR"]))
        parts.append(png(functools.partial(plot_range_test, result),
                         f"LR range test of stage {name}"))
    if outcome.search is not None:
        fractions = outcome.search.evidence.get("fractions")
        if fractions:  # growing short runs: one ranking per length, the curves of the
            # longest (the one that decided): one picture per stage keeps the report's
            # cost, which the budget plans for, bounded
            rungs = list(zip(fractions, outcome.search.comparisons, strict=False))
            for i, (fraction, comparison) in enumerate(rungs):
                length = "the full length" if fraction >= 1 else \
                    f"{fraction:.3g} of the final length"
                parts.append(f"<h3>Runs of {length}</h3>")
                parts += _comparison(comparison, f"{name}, {length}", outcome.decision,
                                     picture=i == len(rungs) - 1, png=png)
        else:
            results = study.trials(name)
            if results:
                parts += _comparison(Comparison.of(results), name, outcome.decision, png=png)
    elif name == "refine" and study.trials(name):  # the closed loop's corrections
        parts += _comparison(Comparison.of(study.trials(name)), name, outcome.decision,
                             png=png)
    if name == "final":
        finals = study.trials("final")
        if finals and finals[-1].history is not None:
            h = finals[-1].history
            parts.append("<h3>Final schedules (learning rate and momentum)</h3>")
            parts.append(png(functools.partial(_final_schedules, steps=len(h.step), hp=hp),
                             "the final training's LR and momentum schedules"))
            parts.append("<h3>Training curves</h3>")
            parts.append(png(functools.partial(plot_history, h, lr=False),
                             "the final training's loss and accuracy"))
            if finals[-1].diagnosis:
                parts.append(f"<p>Diagnosis: {html.escape(finals[-1].diagnosis.advice)}</p>")
                parts.append(_final_note(study, finals[-1].diagnosis.verdict))
    return parts


def _left_out(draw: Callable[[Path], Any], alt: str) -> str:
    return ""


def build_report(study: Study, summary: dict[str, Any], left_out: str | None = None) -> str:
    """The report as one HTML string; with `left_out` (why), without its pictures."""
    hp = summary["hyperparameters"]
    parts = [*_header(summary)]
    if left_out is not None:
        parts.append(f"<p class='note'>{html.escape(left_out)}</p>")
    parts += ["<h2>Chosen hyper-parameters</h2>",
             _table(([["optimizer", f"{summary['optimizer']} (the task's)"]]
                     if summary.get("optimizer") else [])
                    + [[k, display.hyperparameter(k, v)] for k, v in hp.items()],
                    ["hyper-parameter", "value"])]
    final = summary["final"]
    if final.get("val_loss") is not None:
        metric = "" if final["val_metric"] is None else \
            f", accuracy {display.percent(final['val_metric'])}"
        took = f"{final['wall_seconds']:.1f} s"
        trained = final.get("train_seconds")
        if trained is not None and final["wall_seconds"] < trained / 2:
            took = f"trained in {trained:.1f} s by an earlier stage's run, kept, not repeated"
        parts.append(f"<p>Final 1cycle training: {display.epochs(final['epochs'])}, validation "
                     f"loss {display.number(final['val_loss'])}{metric}"
                     f"{html.escape(display.kept(final))}, {took}.</p>")
    parts += ["<h2>Budget spent per stage</h2>",
              _table([[s["name"], s["trials"], f"{s['wall_seconds']:.1f} s",
                       _decision(s["decision"])] for s in summary["stages"]],
                     ["stage", "trials", "wall time", "decision"]),
              f"<p>Total: {summary['wall_seconds_total']:.1f} s.</p>"]
    for stage in study.stages():
        parts += _stage_section(study, stage, hp, png=_png if left_out is None else _left_out)
    body = "\n".join(parts)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>disciplined: {html.escape(summary['task'])}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


SUMMARY_KEYS = frozenset({"task", "seed", "hyperparameters", "final", "stages",
                          "wall_seconds_total"})


def write_report(out: Path, study: Study, left_out: str | None = None) -> Path:
    """report.html from the journal and summary.json; with `left_out` (why), without its
    pictures."""
    path = out / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DisciplinedError(f"{path} is not the summary tune writes ({err}); it was left "
                               f"as it is: run `disciplined tune` again with another --out"
                               ) from None
    missing = SUMMARY_KEYS - set(summary) if isinstance(summary, dict) else SUMMARY_KEYS
    if missing:
        raise DisciplinedError(f"{path} is not the summary tune writes (it lacks "
                               f"{', '.join(sorted(missing))}); it was left as it is: run "
                               f"`disciplined tune` again with another --out")
    path = out / "report.html"
    path.write_text(build_report(study, summary, left_out))
    return path


def regenerate_report(directory: str | Path) -> Path:
    """`disciplined report DIR`: rebuild report.html from the journal and summary.json."""
    out = Path(directory)
    if not (out / "study.db").exists():
        raise DisciplinedError(f"{out} holds no study (study.db); run `disciplined tune TASK "
                               f"--out {out}` first")
    if not (out / "summary.json").exists():
        raise DisciplinedError(f"the study in {out} did not finish (it has no summary.json): "
                               f"finish it with `disciplined tune TASK --out {out} --resume` "
                               "and the options it began with")
    with Study(out, resume=True) as study:
        return write_report(out, study)


TRAIN_SCRIPT = '''"""Reproduce the final training that `disciplined tune` chose on {task}.

Generated with the study; run `python train.py` from any folder. It trains the very
specification of the study's final model (seed, data order, batch size, epochs, 1cycle LR and
cyclical momentum, weight decay) with the library's own trainer, so on the same machine, torch
version and thread count it gives the same numbers bit for bit; on another device or thread
count, floating-point sums add up in another order and the numbers differ within run-to-run
noise. To train with these schedules in a loop of your own, see the README's "Schedules in a
plain training loop" (`disciplined.HyperScheduler`).
"""

import json

import torch

from disciplined.trials import TrialSpec, train

SPEC = json.loads(r"""{spec}""")
STUDY = json.loads(r"""{study}""")  # what the study's final training measured

result, model = train(TrialSpec.from_dict(SPEC), progress=True)
# the model's: where the spec keeps its lowest validation loss's weights, that evaluation's
print(f"validation loss {{result.model_val_loss:.6g}} (the study: {{STUDY['val_loss']:.6g}})" + (
    "" if result.model_val_metric is None else
    f", accuracy {{result.model_val_metric:.2%}} (the study: {{STUDY['val_metric']:.2%}})"))
torch.save(model.state_dict(), "model_reproduced.pt")
print("wrote model_reproduced.pt")
'''


def write_train_script(out: Path, summary: dict[str, Any]) -> Path:
    """train.py: the final model's training specification, trained again by the library."""
    final = summary["final"]
    path = out / "train.py"
    path.write_text(TRAIN_SCRIPT.format(
        task=summary["task"], spec=json.dumps(final["spec"], indent=1),
        study=json.dumps({"val_loss": final["val_loss"], "val_metric": final["val_metric"]})))
    return path
