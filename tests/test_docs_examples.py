"""The complete examples in docs/lightning.md and docs/hf.md run as written (in a scratch
folder, with the real packages). They run in this process, as `python example.py` and
`disciplined find-lr my_task.py` would run them: a fresh interpreter would pay the
frameworks' imports again (about 7 s each, four times, on CI's clock)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from disciplined.cli import app

DOCS = Path(__file__).parents[1] / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.parametrize(("page", "package"), [("lightning.md", "lightning"),
                                                ("hf.md", "transformers")])
def test_the_complete_example_runs(tmp_path, monkeypatch, capsys, page, package):
    """The page's first python block is its complete example."""
    pytest.importorskip(package)
    script = tmp_path / "example.py"
    script.write_text(python_blocks(page)[0])
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert "the loss" in capsys.readouterr().out  # the reading's why was printed


@pytest.mark.parametrize(("page", "package"), [("lightning.md", "lightning"),
                                                ("hf.md", "transformers")])
def test_the_task_file_example_is_a_task(tmp_path, monkeypatch, page, package):
    """The page's task file (the block that defines TASK) runs the range test in its
    framework."""
    pytest.importorskip(package)
    task_file = tmp_path / "my_task.py"
    task_file.write_text(next(b for b in python_blocks(page) if "TASK = task(" in b))
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["find-lr", str(task_file), "--out", str(tmp_path / "lr"),
                                    "--quiet"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "lr" / "lr_range.json").exists()
