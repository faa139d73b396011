"""The base every schedule shares: validation helpers, the kind registry, dict round trips."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

_REGISTRY: dict[str, type[Schedule]] = {}

S = TypeVar("S", bound="type[Schedule]")


def register(kind: str) -> Any:
    """Class decorator: name a schedule class so `from_dict` can rebuild it."""

    def wrap(cls: S) -> S:
        if kind in _REGISTRY:
            raise RuntimeError(f"schedule kind {kind!r} registered twice")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return wrap


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A value as a pure function of the optimizer step (0-indexed).

    Subclasses are frozen dataclasses: they pickle, compare by value and serialize to a
    plain dict. Past `total_steps` a schedule holds its last value.
    """

    kind: ClassVar[str] = "schedule"

    def __call__(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self._at(step)

    def _at(self, step: int) -> float:
        """The value at a step known to be >= 0."""
        raise NotImplementedError

    # Steps the schedule is defined for, None when it goes on for ever. Finite schedules declare
    # it as a dataclass field (so it serializes under that name); the others set it to None.
    if TYPE_CHECKING:

        @property
        def total_steps(self) -> int | None: ...

    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) value the schedule can take over all steps."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `schedules.from_dict` turns it back into an equal schedule."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if isinstance(value, Schedule):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, Schedule) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> Schedule:
        return cls(**fields)

    def values(self, num_steps: int | None = None) -> list[float]:
        """The values at steps 0 .. num_steps-1 (default: total_steps), e.g. for plots."""
        n = self.total_steps if num_steps is None else num_steps
        if n is None:
            raise ValueError(
                f"{self.kind} has no total_steps: pass num_steps, e.g. values(num_steps=1000)"
            )
        return [self(k) for k in range(n)]


def from_dict(data: Mapping[str, Any]) -> Schedule:
    """Rebuild a schedule from `Schedule.to_dict()` output (also after a JSON round trip)."""
    if not isinstance(data, Mapping) or "kind" not in data:
        raise ValueError(f"a schedule dict needs a 'kind' key, got {data!r}")
    fields = dict(data)
    kind = fields.pop("kind")
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ValueError(f"unknown schedule kind {kind!r}; known kinds: {sorted(_REGISTRY)}")
    try:
        return cls._from_fields(fields)
    except TypeError as err:
        raise ValueError(f"bad fields for schedule kind {kind!r}: {err}") from None


def kinds() -> list[str]:
    """Names of every registered schedule kind."""
    return sorted(_REGISTRY)


# --- validation: each raises ValueError naming the argument and what is accepted -----------


def check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    value = check_finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_non_negative(name: str, value: float) -> float:
    value = check_finite(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_ordered(low_name: str, low: float, high_name: str, high: float) -> tuple[float, float]:
    """Two non-negative ends of a range, the first not above the second."""
    low = check_non_negative(low_name, low)
    high = check_non_negative(high_name, high)
    if low > high:
        raise ValueError(
            f"{low_name} must be <= {high_name}, got {low_name}={low}, {high_name}={high}"
        )
    return low, high


def check_int(name: str, value: int, minimum: int) -> int:
    # numpy integers are fine; floats such as 100.0 are refused rather than truncated.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def set_fields(obj: object, **values: Any) -> None:
    """Assign normalized or cached fields inside a frozen dataclass's __post_init__."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)
