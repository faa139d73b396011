"""disciplined: hyper-parameters set the way Smith's "A disciplined approach to neural network
hyper-parameters" (2018) prescribes.

`disciplined.schedules` holds the schedules (pure functions of the step), and
`disciplined.HyperScheduler` applies them to any torch optimizer.
"""

from . import schedules
from .compare import Comparison, compare
from .diagnose import Diagnosis, diagnose
from .errors import DisciplinedError
from .hyper import HyperScheduler
from .interpolate import Interpolation, interpolate
from .range_test import RangeTestResult, lr_range_test
from .recipe import StudyResult, tune
from .trials import Budget, TrialResult, TrialSpec

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Comparison",
    "Diagnosis",
    "DisciplinedError",
    "HyperScheduler",
    "Interpolation",
    "RangeTestResult",
    "StudyResult",
    "TrialResult",
    "TrialSpec",
    "__version__",
    "compare",
    "diagnose",
    "interpolate",
    "lr_range_test",
    "schedules",
    "tune",
]
