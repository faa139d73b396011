"""What `tune` decides on every zoo task at its default budget, and how two libraries differ.

The default budget is counted in final trainings, not seconds, so the plan, and with it every
decision, is the same on every run and every machine: where bench-decisions' draws at 3x and
10x move with the clock (a run that took 1.2x its timed length re-plans the stage), this says
exactly which decisions a change of the library changed. One seed per task, torch threads 1.

    python benchmarks/tune_default.py --out new.json            # the library installed
    PYTHONPATH=<an old checkout>/src python benchmarks/tune_default.py --out old.json
    python benchmarks/tune_default.py --compare old.json new.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def decide(name: str, seed: int) -> dict[str, Any]:
    """One tune of a zoo task at the default budget: its choice, the final's numbers, and
    each stage's reason."""
    from _common import end_of

    from disciplined.recipe import tune

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = tune(f"zoo/{name}", out=out, seed=seed).summary
    final = summary["final"]
    return {"hyperparameters": summary["hyperparameters"],
            # at its end, as the files measured before a final could keep earlier weights
            "final": {"val_loss": end_of(final)[0], "val_metric": end_of(final)[1],
                      "constant_loss": final.get("constant_loss")},
            "reasons": {s["name"]: s["reason"] for s in summary["stages"]},
            "wall_seconds": round(time.perf_counter() - start, 1)}


def measure(out: Path, seed: int, names: list[str]) -> None:
    import torch

    from disciplined import __version__

    torch.set_num_threads(1)
    library = Path(__import__("disciplined").__file__).parent
    commit = subprocess.run(["git", "-C", str(library), "log", "-1", "--format=%h", "--",
                             "."], capture_output=True, text=True).stdout.strip()
    edited = subprocess.run(["git", "-C", str(library), "status", "--porcelain", "--", "."],
                            capture_output=True, text=True).stdout.strip()
    commit += "-edited" if commit and edited else ""  # not the commit's own decisions
    found: dict[str, Any] = {"seed": seed, "disciplined": __version__,
                             "library": commit or str(library), "tasks": {}}
    for name in names:
        found["tasks"][name] = entry = decide(name, seed)
        print(f"{name}: max LR {entry['hyperparameters']['max_lr']:.3g}, final "
              f"{entry['final']['val_loss']:.4g} ({entry['wall_seconds']} s)", flush=True)
    out.write_text(json.dumps(found, indent=1) + "\n")


def compare(before: Path, after: Path) -> None:
    """Print, task by task, whether the choice and the final's numbers are the same, and
    which stages' reasons changed (both files' own words)."""
    old, new = (json.loads(p.read_text())["tasks"] for p in (before, after))
    names = [n for n in old if n in new]
    same = 0
    for name in names:
        a, b = old[name], new[name]
        kept = a["hyperparameters"] == b["hyperparameters"] and \
            a["final"]["val_loss"] == b["final"]["val_loss"]
        same += kept
        reasons = [s for s in a["reasons"] if a["reasons"][s] != b["reasons"].get(s)]
        print(f"{name}: {'same choice and final' if kept else 'CHANGED'}"
              + (f"; reasons changed: {', '.join(reasons)}" if reasons else ""))
        if not kept:
            for key, was in a["hyperparameters"].items():
                if was != b["hyperparameters"].get(key):
                    print(f"  {key}: {was} -> {b['hyperparameters'].get(key)}")
            print(f"  final: {a['final']} -> {b['final']}")
        for stage in reasons:
            print(f"  {stage} before: {a['reasons'][stage]}\n  {stage} after:  "
                  f"{b['reasons'].get(stage)}")
    alone = sorted(old.keys() ^ new.keys())
    print(f"{same} of {len(names)} tasks: same choice and final"
          + (f" (in one file only, not compared: {', '.join(alone)})" if alone else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the decisions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=None, help="comma-separated (default: the zoo)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.out is None:
        parser.error("give --out (to measure) or --compare BEFORE AFTER")
    from disciplined import zoo

    names = zoo.names() if args.tasks is None else [t for t in args.tasks.split(",") if t]
    measure(args.out, args.seed, names)


if __name__ == "__main__":
    sys.exit(main())
