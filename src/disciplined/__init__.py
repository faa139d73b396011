"""disciplined: hyper-parameters set the way Smith's "A disciplined approach to neural network
hyper-parameters" (2018) prescribes.

`disciplined.schedules` holds the schedules (pure functions of the step), and
`disciplined.HyperScheduler` applies them to any torch optimizer.

The names below are loaded on first use (PEP 562), so `import disciplined.schedules` stays
free of torch and quick; `from disciplined import tune` loads what `tune` needs. The functions
that share their module's name are imported from the module: `from disciplined.compare import
compare`, `from disciplined.diagnose import diagnose`, `from disciplined.interpolate import
interpolate` (a package attribute cannot be both the module and its function).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Budget": "trials",
    "Comparison": "compare",
    "Decision": "decisions",
    "Diagnosis": "diagnose",
    "DisciplinedError": "errors",
    "Hyper": "decisions",
    "HyperScheduler": "hyper",
    "Interpolation": "interpolate",
    "RangeTestResult": "range_test",
    "SearchResult": "searches",
    "StudyResult": "recipe",
    "TrialResult": "trials",
    "TrialSpec": "trials",
    "lr_range_test": "range_test",
    "tune": "recipe",
}

__all__ = [
    "Budget",
    "Comparison",
    "Decision",
    "Diagnosis",
    "DisciplinedError",
    "Hyper",
    "HyperScheduler",
    "Interpolation",
    "RangeTestResult",
    "SearchResult",
    "StudyResult",
    "TrialResult",
    "TrialSpec",
    "__version__",
    "lr_range_test",
    "schedules",
    "tune",
]

if TYPE_CHECKING:
    from . import schedules
    from .compare import Comparison
    from .decisions import Decision, Hyper
    from .diagnose import Diagnosis
    from .errors import DisciplinedError
    from .hyper import HyperScheduler
    from .interpolate import Interpolation
    from .range_test import RangeTestResult, lr_range_test
    from .recipe import StudyResult, tune
    from .searches import SearchResult
    from .trials import Budget, TrialResult, TrialSpec


def __getattr__(name: str) -> Any:
    if name == "schedules":
        return importlib.import_module(".schedules", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'disciplined' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
