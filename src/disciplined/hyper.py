"""Applying schedules to a torch optimizer: learning rate, momentum (or beta1), weight decay.

The one place where a schedule meets optimizer state. Values are recomputed from the step
count, so `state_dict()` is just that count and a resumed run continues bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from .schedules import Schedule

ScheduleArg = Schedule | Sequence[Schedule] | None

# Optimizers whose momentum lives in `betas[0]` rather than in `momentum`.
_BETA_KEY = "betas"
_MOMENTUM_KEY = "momentum"


class _Plan:
    """One hyper-parameter's schedules for every param group, and how to write them."""

    __slots__ = ("field", "scales", "schedules", "shared", "write")

    def __init__(self, field: str, schedules: list[Schedule], scales: list[float],
                 shared: bool, write: Any) -> None:
        self.field = field
        self.schedules = schedules
        self.scales = scales
        self.shared = shared
        self.write = write

    def apply(self, groups: list[dict[str, Any]], step: int) -> None:
        write = self.write
        if self.shared:
            value = self.schedules[0]._at(step)
            for group, scale in zip(groups, self.scales, strict=True):
                write(group, value * scale)
        else:
            for group, sched, scale in zip(groups, self.schedules, self.scales, strict=True):
                write(group, sched._at(step) * scale)


def group_momentum(group: dict[str, Any]) -> float | None:
    """A param group's momentum: SGD's `momentum`, Adam's beta1, None when it has neither."""
    if _BETA_KEY in group:
        return float(group[_BETA_KEY][0])
    return float(group[_MOMENTUM_KEY]) if _MOMENTUM_KEY in group else None


def _set_beta1(group: dict[str, Any], value: float) -> None:
    group[_BETA_KEY] = (value, group[_BETA_KEY][1])


def _setter(key: str, groups: list[dict[str, Any]]) -> Any:
    """Plain assignment, or an in-place fill where the optimizer keeps the value in a tensor
    (capturable/fused optimizers), so the tensor the optimizer holds sees the change."""
    if any(isinstance(g[key], torch.Tensor) for g in groups):

        def write(group: dict[str, Any], value: float) -> None:
            if isinstance(group[key], torch.Tensor):
                group[key].fill_(value)
            else:
                group[key] = value

        return write

    def assign(group: dict[str, Any], value: float) -> None:
        group[key] = value

    return assign


class HyperScheduler(LRScheduler):
    """Schedules `lr`, `momentum` and `weight_decay` of any torch optimizer, per param group.

    Each of `lr`, `momentum`, `weight_decay` is optional and is either one schedule for every
    group or a list with one schedule per group. `lr_scale` / `weight_decay_scale` multiply a
    shared schedule per group (discriminative learning rates; no decay on biases).
    `momentum` is SGD's and RMSprop's `momentum`, and `betas[0]` for Adam, AdamW, NAdam,
    RAdam and Adamax. Call `step()` after each `optimizer.step()`, as with torch's schedulers;
    the values for step 0 are set here.

    It is a `torch.optim.lr_scheduler.LRScheduler`, so frameworks that take one (Lightning's
    `configure_optimizers`, Hugging Face's `Trainer(optimizers=...)`) step it, checkpoint it
    and resume it; its state stays `{"step": n}`. Unlike torch's schedulers it reads no
    `initial_lr` and does not wrap `optimizer.step`: every value is a function of the step.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        lr: ScheduleArg = None,
        momentum: ScheduleArg = None,
        weight_decay: ScheduleArg = None,
        lr_scale: Sequence[float] | None = None,
        weight_decay_scale: Sequence[float] | None = None,
    ) -> None:
        # LRScheduler.__init__ is not called: it would write `initial_lr` into the groups,
        # wrap optimizer.step and take a step of its own; what its methods read is set here
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
        self.optimizer = optimizer
        self._step_count = 1
        groups = optimizer.param_groups
        plans = []
        if lr is not None:
            plans.append(self._plan("lr", lr, lr_scale, "lr", _setter("lr", groups)))
        if momentum is not None:
            plans.append(self._momentum_plan(momentum))
        if weight_decay is not None:
            if any("weight_decay" not in g for g in groups):
                raise ValueError(
                    f"{type(optimizer).__name__} has no weight_decay to schedule; "
                    "drop the weight_decay schedule"
                )
            plans.append(self._plan("weight_decay", weight_decay, weight_decay_scale,
                                    "weight_decay", _setter("weight_decay", groups)))
        elif weight_decay_scale is not None:
            raise ValueError("weight_decay_scale needs a weight_decay schedule")
        if lr is None and lr_scale is not None:
            raise ValueError("lr_scale needs an lr schedule")
        if not plans:
            raise ValueError("give at least one of lr, momentum, weight_decay to schedule")
        self._plans = tuple(plans)
        self._step = 0
        self._apply()
        self.base_lrs = list[float | torch.Tensor](self.get_last_lr())

    # --- construction helpers -----------------------------------------------------------

    def _plan(self, name: str, given: Schedule | Sequence[Schedule],
              scale: Sequence[float] | None, field: str, write: Any) -> _Plan:
        n = len(self.optimizer.param_groups)
        if isinstance(given, Schedule):
            schedules, shared = [given], True
        else:
            schedules, shared = list(given), False
            if len(schedules) != n or not all(isinstance(s, Schedule) for s in schedules):
                raise ValueError(
                    f"{name} must be a schedule or a list of {n} schedules (one per param "
                    f"group), got {given!r}"
                )
        if scale is None:
            scales = [1.0] * n
        else:
            scales = [float(s) for s in scale]
            if len(scales) != n or any(not s >= 0 for s in scales):
                raise ValueError(
                    f"{name}_scale must hold {n} non-negative factors (one per param group), "
                    f"got {list(scale)}"
                )
        low = min(s.bounds()[0] for s in schedules)
        if low < 0:
            raise ValueError(f"{name} schedule goes below 0 (down to {low}); it must stay >= 0")
        return _Plan(field, schedules, scales, shared, write)

    def _momentum_plan(self, momentum: Schedule | Sequence[Schedule]) -> _Plan:
        groups = self.optimizer.param_groups
        name = type(self.optimizer).__name__
        if all(_BETA_KEY in g for g in groups):
            plan = self._plan("momentum", momentum, None, _BETA_KEY, _set_beta1)
            high = max(s.bounds()[1] for s in plan.schedules)
            if high >= 1:
                raise ValueError(
                    f"momentum is {name}'s beta1 and must stay below 1, but the schedule "
                    f"reaches {high}"
                )
            return plan
        if not all(_MOMENTUM_KEY in g for g in groups):
            raise ValueError(
                f"{name} has no momentum to schedule (its param groups hold neither "
                f"'momentum' nor 'betas'); drop the momentum schedule, or use SGD, RMSprop, "
                f"Adam, AdamW, NAdam, RAdam or Adamax"
            )
        plan = self._plan("momentum", momentum, None, _MOMENTUM_KEY,
                          _setter(_MOMENTUM_KEY, groups))
        for i, group in enumerate(groups):
            sched = plan.schedules[0 if plan.shared else i]
            if group.get("nesterov") and sched.bounds()[0] <= 0:
                raise ValueError(
                    f"param group {i} uses Nesterov momentum, which needs momentum > 0, but the "
                    f"momentum schedule reaches {sched.bounds()[0]}; keep it above 0 or set "
                    f"nesterov=False"
                )
            rmsprop = isinstance(self.optimizer, torch.optim.RMSprop)
            if rmsprop and sched(0) == 0 < sched.bounds()[1]:
                # RMSprop allocates its momentum buffer only if momentum > 0 at its first step.
                raise ValueError(
                    f"param group {i}: RMSprop needs momentum > 0 at step 0 to use momentum "
                    f"later; start the schedule above 0"
                )
        return plan

    # --- the hot path -------------------------------------------------------------------

    def _apply(self) -> None:
        groups = self.optimizer.param_groups
        for plan in self._plans:
            plan.apply(groups, self._step)

    def step(self, epoch: int | None = None) -> None:
        """Advance one optimizer step and set the values for the next one."""
        if epoch is not None:  # torch's deprecated form; a step count is what we follow
            raise TypeError("HyperScheduler.step() takes no epoch: it advances one step; "
                            "use load_state_dict({'step': n}) to jump to step n")
        self._step += 1
        self._step_count += 1
        self._apply()

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The learning rates the schedules set for the current step."""
        return self.get_last_lr()

    @property
    def last_epoch(self) -> int:
        """torch's name for the step count (for code that reads it from any scheduler)."""
        return self._step

    @last_epoch.setter
    def last_epoch(self, step: int) -> None:
        self.load_state_dict({"step": step})

    # --- inspection and resume ----------------------------------------------------------

    @property
    def last_step(self) -> int:
        """How many times `step()` has been called since construction (or the loaded state)."""
        return self._step

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """The learning rate of each param group, as torch's schedulers return it."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def get_last_momentum(self) -> list[float]:
        """Momentum (or beta1) of each param group; empty when momentum is not scheduled."""
        for plan in self._plans:
            if plan.field == _BETA_KEY:
                return [float(g[_BETA_KEY][0]) for g in self.optimizer.param_groups]
            if plan.field == _MOMENTUM_KEY:
                return [float(g[_MOMENTUM_KEY]) for g in self.optimizer.param_groups]
        return []

    def state_dict(self) -> dict[str, int]:
        """Only the step count: every value is recomputed from it."""
        return {"step": self._step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved step count and set the values for that step."""
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(
                f"state must be a dict from HyperScheduler.state_dict() like {{'step': 120}}, "
                f"got {state!r}"
            )
        self._step = step
        self._apply()

    def schedules(self) -> dict[str, list[dict[str, Any]]]:
        """Each scheduled hyper-parameter's schedules as dicts (for reports and journals)."""
        names = {"lr": "lr", _MOMENTUM_KEY: "momentum", _BETA_KEY: "momentum",
                 "weight_decay": "weight_decay"}
        return {names[p.field]: [s.to_dict() for s in p.schedules] for p in self._plans}
