"""The complete examples in docs/lightning.md and docs/hf.md run as written (in a scratch
folder, with the real packages)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[1] / "docs"


def first_example(page: str) -> str:
    """The page's first python block: its complete example."""
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)[0]


@pytest.mark.parametrize(("page", "package"), [("lightning.md", "lightning"),
                                                ("hf.md", "transformers")])
def test_the_complete_example_runs(tmp_path, page, package):
    pytest.importorskip(package)
    script = tmp_path / "example.py"
    script.write_text(first_example(page))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the loss" in done.stdout  # the reading's why was printed


@pytest.mark.parametrize(("page", "package"), [("lightning.md", "lightning"),
                                                ("hf.md", "transformers")])
def test_the_task_file_example_is_a_task(tmp_path, page, package):
    """The page's task file (the block that defines TASK) runs the range test in its
    framework."""
    pytest.importorskip(package)
    task_file = tmp_path / "my_task.py"
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
    task_file.write_text(next(b for b in blocks if "TASK = task(" in b))
    done = subprocess.run([sys.executable, "-m", "disciplined", "find-lr", str(task_file),
                           "--out", str(tmp_path / "lr"), "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "lr" / "lr_range.json").exists()
