"""Numbers as people read them, in the console and the report: three significant figures,
accuracies as percentages, a momentum pair as "0.95 -> 0.85". The JSON files keep full
precision; nothing here is ever parsed back. Imports nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def number(value: float | int | None) -> str:
    """3 significant figures ("0.0282", "1.2e-05"); ints as they are; None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, int):  # bools too
        return str(value)
    return f"{value:.3g}"


def percent(value: float | None) -> str:
    """An accuracy in [0, 1] as "97.21%"."""
    return "-" if value is None else f"{value:.2%}"


def momentum(pair: Sequence[float]) -> str:
    """Cyclical momentum from its peak to its trough, "0.95 -> 0.85"."""
    high, low = pair
    return f"{high:g} -> {low:g}"


def epochs(value: float) -> str:
    """ "1 epoch", "2.5 epochs"."""
    return f"{value:g} epoch" + ("" if value == 1 else "s")


def hyperparameter(name: str, value: Any) -> str:
    """One chosen value as the console and the report show it."""
    if name == "momentum" and isinstance(value, Sequence) and len(value) == 2:
        return momentum(value)
    if isinstance(value, float | int) or value is None:
        return number(value)
    return str(value)


def setting(value: Any) -> str:
    """One setting's value as a resumed study's error shows it ("none" when unset)."""
    if value is None:
        return "none"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def kept(final: dict[str, Any]) -> str:
    """The summary's final training, where its model kept an earlier evaluation's weights:
    which, and what its end scored ("" where the model is the end's)."""
    if final.get("kept_step") is None:
        return ""
    end = f"{number(final['end_val_loss'])}" + (
        "" if final.get("end_val_metric") is None else
        f", accuracy {percent(final['end_val_metric'])}")
    return (f" (the weights of step {final['kept_step']}, where its validation loss was "
            f"lowest, picked on the very set it is scored by; at its end {end})")
