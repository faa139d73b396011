"""For users already on Ray Tune: our trial as a Tune function trainable.

`disciplined` itself runs trials as Ray tasks (see `executors`); this adapter lets a Tune
search (its search algorithms, ASHA and other schedulers, its experiment tracking) train the
same seeded, 1cycle-scheduled trial. Needs `pip install 'disciplined[tune]'`.

    from ray import tune
    from disciplined import Budget, TrialSpec
    from disciplined.ray_tune import trainable

    base = TrialSpec("mnist1d", max_lr=0.2, budget=Budget(epochs=5))
    tuner = tune.Tuner(trainable(base), param_space={
        "weight_decay": tune.grid_search([1e-3, 1e-4, 1e-5, 0.0])},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min"))
    best = tuner.fit().get_best_result()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .errors import DisciplinedError
from .trials import Budget, TrialSpec, build_trainer, result_from

TUNE_MISSING = ("disciplined.ray_tune needs Ray Tune: pip install 'disciplined[tune]' "
                "(disciplined's own --executor ray needs only 'disciplined[ray]')")
FIELDS = {f.name for f in dataclasses.fields(TrialSpec)}


def spec_from_config(base: TrialSpec, config: dict[str, Any]) -> TrialSpec:
    """`base` with the fields a Tune config sets. `momentum` may be one number (the cycle's
    top; the bottom stays `base`'s) or a pair; `budget` a dict of Budget's fields."""
    unknown = sorted(set(config) - FIELDS)
    if unknown:
        raise ValueError(f"Tune config keys must be TrialSpec fields; unknown: "
                         f"{', '.join(unknown)} (fields: {', '.join(sorted(FIELDS))})")
    changes = dict(config)
    if "momentum" in changes:
        value = changes["momentum"]
        changes["momentum"] = (float(value), base.momentum[1]) \
            if isinstance(value, int | float) else tuple(value)
    if isinstance(changes.get("budget"), dict):
        changes["budget"] = Budget(**changes["budget"])
    return base.with_(**changes)


def trainable(base: TrialSpec) -> Callable[[dict[str, Any]], None]:
    """A function trainable that trains `spec_from_config(base, config)` and reports
    `val_loss`, `val_metric` and `step` at each evaluation (so Tune's schedulers can stop a
    trial early), then once more with the diagnosis's `verdict` and `done`."""
    try:
        from ray import tune
    except ImportError:
        raise DisciplinedError(TUNE_MISSING) from None

    def train(config: dict[str, Any]) -> None:
        import ray
        import torch

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        torch.set_num_threads(max(1, int(cpus)))
        spec = spec_from_config(base, config)
        trainer, steps = build_trainer(spec, on_eval=lambda step, loss, metric: tune.report(
            {"val_loss": loss, "val_metric": metric, "step": step}))
        history = trainer.run(steps=steps, seconds=spec.budget.seconds)
        result = result_from(spec, history, history.wall_seconds)
        tune.report({"val_loss": result.val_loss, "val_metric": result.val_metric,
                     "step": trainer.step, "done": True,
                     "verdict": result.diagnosis.verdict if result.diagnosis else None})

    return train
