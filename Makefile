# Two entry points that work from a fresh clone: `make test` and `make demo`.
# torch is pinned to the CPU build on this machine's disk and installed first, so that
# `pip install -e .` finds `torch>=2.3` satisfied and never pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: test demo lint typecheck bench-scheduler clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

demo: $(STAMP)
	$(VENV)/bin/disciplined demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench-scheduler: $(STAMP)
	$(PY) benchmarks/scheduler_overhead.py --write benchmarks/RESULTS.md

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache .hypothesis
