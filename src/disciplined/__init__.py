"""disciplined: hyper-parameters set the way Smith's "A disciplined approach to neural network
hyper-parameters" (2018) prescribes.

`disciplined.schedules` holds the schedules (pure functions of the step), and
`disciplined.HyperScheduler` applies them to any torch optimizer.
"""

from . import schedules
from .errors import DisciplinedError
from .hyper import HyperScheduler
from .range_test import RangeTestResult, lr_range_test

__version__ = "0.1.0"

__all__ = [
    "DisciplinedError",
    "HyperScheduler",
    "RangeTestResult",
    "__version__",
    "lr_range_test",
    "schedules",
]
