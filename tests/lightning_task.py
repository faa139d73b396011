"""A task file that Lightning trains: `disciplined tune tests/lightning_task.py`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the helper beside this file, wherever it runs

from lightning_digits import DigitsData, DigitsModule

from disciplined.lightning import task

TASK = task(DigitsModule, DigitsData, metric="val_acc", epochs=3, accelerator="cpu")
