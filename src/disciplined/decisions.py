"""What the recipe decides, as data: `Decision` (what one search or stage chose) and `Hyper`
(every hyper-parameter decided so far). Plain frozen dataclasses; no torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .defaults import MOMENTUM, ONE_CYCLE_DIV, WEIGHT_DECAY


def _momentum(value: Any) -> tuple[float, float]:
    high, low = value
    return float(high), float(low)


@dataclasses.dataclass(frozen=True)
class Decision:
    """The hyper-parameters one search or stage sets; None leaves a value as it was."""

    max_lr: float | None = None
    momentum: tuple[float, float] | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    # the schedule search's choice; the recipe always trains 1cycle, so `Hyper` has no policy
    policy: str | None = None
    cycle_momentum: bool | None = None
    # the final training's length, where the final stage re-plans it (`recipe._final_epochs`)
    epochs: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The values it sets (momentum as a [max, min] list), for JSON."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.momentum is not None:
            out["momentum"] = list(self.momentum)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Read `to_dict`'s output; also journals written before min_lr was derived from
        max_lr (they stored it: dropped, as it follows from max_lr)."""
        fields = {k: v for k, v in data.items() if k != "min_lr"}
        if fields.get("momentum") is not None:
            fields["momentum"] = _momentum(fields["momentum"])
        return cls(**fields)

    def describe(self) -> str:
        """One line for people, e.g. "momentum 0.95 -> 0.85"; "" when it sets nothing."""
        parts = []
        if self.max_lr is not None:
            parts.append(f"max_lr {self.max_lr:.3g}")
        if self.momentum is not None:
            parts.append(f"momentum {self.momentum[0]:g} -> {self.momentum[1]:g}")
        if self.weight_decay is not None:
            parts.append(f"weight decay {self.weight_decay:g}")
        if self.batch_size is not None:
            parts.append(f"batch size {self.batch_size}")
        if self.policy is not None:
            cyclical = "" if self.cycle_momentum is None else \
                f" ({'cyclical' if self.cycle_momentum else 'constant'} momentum)"
            parts.append(f"policy {self.policy}{cyclical}")
        if self.epochs is not None:
            parts.append(f"{self.epochs:g} epochs")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Every hyper-parameter of the final 1cycle training, as decided so far.

    Starts from the paper's defaults and the task's batch size (`tune` starts an AdamW task
    from AdamW's own weight decay, defaults.START_WEIGHT_DECAY); `max_lr` is None until a
    range test finds it, `epochs` until the budget is planned. `min_lr` is max_lr / 10."""

    batch_size: int
    max_lr: float | None = None
    momentum: tuple[float, float] = MOMENTUM
    weight_decay: float = WEIGHT_DECAY
    epochs: float | None = None

    @property
    def min_lr(self) -> float | None:
        return None if self.max_lr is None else self.max_lr / ONE_CYCLE_DIV

    def apply(self, decision: Decision) -> Hyper:
        """These hyper-parameters with what `decision` sets."""
        mine = {f.name for f in dataclasses.fields(self)}
        changes = {k: v for k, v in dataclasses.asdict(decision).items()
                   if v is not None and k in mine}
        if decision.momentum is not None:
            changes["momentum"] = decision.momentum
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """summary.json's "hyperparameters" (min_lr included for the reader)."""
        return {"max_lr": self.max_lr, "min_lr": self.min_lr, "momentum": list(self.momentum),
                "weight_decay": self.weight_decay, "batch_size": self.batch_size,
                "epochs": self.epochs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hyper:
        return cls(batch_size=int(data["batch_size"]), max_lr=data["max_lr"],
                   momentum=_momentum(data["momentum"]), weight_decay=data["weight_decay"],
                   epochs=data["epochs"])
