"""The loss along the line between two solutions (Smith & Topin, "Exploring loss function
topology with cyclical learning rates", 2017): theta = alpha * a + (1 - alpha) * b."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .engine import Data, evaluate, pick_device, to_device

# From half a segment before b to half a segment past a: the line's ends show the barriers.
ALPHA_RANGE = (-0.5, 1.5)


def alpha_grid(points: int = 21) -> list[float]:
    """`points` evenly spaced alphas over ALPHA_RANGE (21: steps of 0.1)."""
    if points < 2:
        raise ValueError(f"points must be an int >= 2, got {points}")
    return np.round(np.linspace(*ALPHA_RANGE, points), 6).tolist()


ALPHAS = tuple(alpha_grid())


@dataclasses.dataclass(frozen=True)
class Interpolation:
    """Training and validation loss (and metric) at each alpha; alpha=1 is `a`, 0 is `b`."""

    alphas: list[float]
    train_loss: list[float]
    val_loss: list[float]
    train_metric: list[float | None]
    val_metric: list[float | None]
    recompute_bn: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interpolation:
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _blend(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
           alpha: float) -> dict[str, torch.Tensor]:
    out = {}
    for key, va in a.items():
        vb = b[key]
        # integer buffers (BatchNorm's num_batches_tracked) are not interpolated
        out[key] = alpha * va + (1 - alpha) * vb if va.is_floating_point() else va.clone()
    return out


def _recompute_batchnorm(model: nn.Module, data: Data, device: torch.device,
                         batch_size: int, max_batches: int) -> None:
    """BatchNorm statistics of the blended weights, from training batches (cumulative mean)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)  # type: ignore[arg-type]
    model.train()
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= max_batches:
                break
            model(to_device(batch[0], device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum


def interpolate(state_a: dict[str, Any], state_b: dict[str, Any],
                model_factory: Callable[[], nn.Module], data: tuple[Data, Data], *,
                loss_fn: Callable[..., torch.Tensor] | None = None,
                metric: str | None = "accuracy", alphas: Sequence[float] = ALPHAS,
                recompute_bn: bool = False, max_samples: int | None = 5000,
                batch_size: int = 256, device: str | None = None) -> Interpolation:
    """Evaluate theta = alpha * a + (1 - alpha) * b for each alpha on `data` = (train, val).

    With `recompute_bn`, BatchNorm running statistics are re-estimated at each alpha from up
    to `max_samples` training samples (the blended statistics of a and b mean little).
    """
    if state_a.keys() != state_b.keys():
        raise ValueError("the two states come from different models: their keys differ")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    dev = pick_device(device)
    model = model_factory().to(dev)
    a = {k: v.to(dev) for k, v in state_a.items()}
    b = {k: v.to(dev) for k, v in state_b.items()}
    train, val = data
    out: dict[str, list[Any]] = {"train_loss": [], "val_loss": [], "train_metric": [],
                                 "val_metric": []}
    for alpha in alphas:
        model.load_state_dict(_blend(a, b, float(alpha)))
        if recompute_bn:
            _recompute_batchnorm(model, train, dev, batch_size,
                                 max(1, (max_samples or 10**9) // batch_size))
        for name, part in (("train", train), ("val", val)):
            loss, acc = evaluate(model, part, loss_fn, metric, dev, max_samples=max_samples,
                                 which="training" if name == "train" else "validation")
            out[f"{name}_loss"].append(loss)
            out[f"{name}_metric"].append(acc)
    return Interpolation([float(x) for x in alphas], out["train_loss"], out["val_loss"],
                         out["train_metric"], out["val_metric"], recompute_bn)
