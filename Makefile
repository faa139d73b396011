# Two entry points that work from a fresh clone: `make test` and `make demo`.
# torch is pinned to the CPU build on this machine's disk and installed first, so that
# `pip install -e .` finds `torch>=2.3` satisfied and never pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
# the integrations' packages, at versions whose requirements keep this torch (pip --dry-run)
FRAMEWORKS := lightning==2.6.6 transformers==5.23.0 accelerate==1.15.0
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: test pytest debian-packages demo lint bench-gpu typecheck layers horizon-bias stage-bias lr-prior weight-decay-start bench-scheduler bench-range-test bench-lr-suggestion bench-early-reading bench-tune bench-super-convergence bench-mnist1d bench-lr-finders bench-integrations bench-search-cost bench-ray bench-data-parallel zoo-reference bench-decisions bench-budget bench-generous tune-default bench-step-time ray-cluster clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet $(FRAMEWORKS)
	$(PY) -m pip install --quiet -e '.[dev,ray,tune,lightning,hf]'
	touch $(STAMP)

# The report is tested in a real browser: Debian's headless Chromium.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# What the tests read from Debian: the browser and Fashion-MNIST (test_zoo trains on it), in
# one apt-get, as two at once would wait on dpkg's lock.
debian-packages:
	@missing=""; [ -e $(CHROMIUM) ] || missing="chromium"; \
	[ -e $(FASHION) ] || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then echo "apt-get install $$missing"; \
		$(SUDO) apt-get install -y -q $$missing > /dev/null || \
		($(SUDO) apt-get update -q > /dev/null && \
		 $(SUDO) apt-get install -y -q $$missing > /dev/null); fi

# CI has 15 minutes on 2 cores. Python's packages and Debian's install side by side, and so
# do the type check (a minute on one core) and the tests (mostly one core at a time).
test:
	$(MAKE) --no-print-directory -j2 $(STAMP) debian-packages
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(MAKE) --no-print-directory -j2 typecheck pytest

pytest: $(STAMP)
	$(VENV)/bin/pytest

demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/disciplined tune digits --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

layers: $(STAMP)
	$(VENV)/bin/lint-imports

bench-scheduler: $(STAMP)
	$(PY) benchmarks/scheduler_overhead.py --write benchmarks/RESULTS.md

# Benchmarks run in their own environment: the peers are installed with --no-deps so that
# torch stays the CPU build 2.13.0 (checked below).
$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet $(TORCH)
	$(BENCH_VENV)/bin/pip install --quiet -e '.[ray]'
	$(BENCH_VENV)/bin/pip install --quiet --no-deps torch-lr-finder==0.2.2 packaging \
		pytorch-lightning==2.6.6 lightning-utilities torchmetrics fsspec pyyaml
	$(BENCH_VENV)/bin/pip install --quiet optuna==5.0.0
	$(BENCH_VENV)/bin/pip install --quiet --no-deps prodigyopt==1.1.2 schedulefree==1.4.1
	$(BENCH_VENV)/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(BENCH_STAMP)

# The benchmarks' Fashion-MNIST comes the one way the tests' does.
$(FASHION):
	$(MAKE) --no-print-directory debian-packages

# On a GPU machine (the device tool): our Trainer, Lightning's and a raw loop; see the script.
bench-gpu: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/bench_gpu.py --write benchmarks/RESULTS.md

bench-range-test: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/range_test_overhead.py --write benchmarks/RESULTS.md

bench-lr-suggestion: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/lr_suggestion.py --write benchmarks/RESULTS.md

bench-early-reading: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/early_reading.py --write benchmarks/RESULTS.md

bench-tune: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/tune_stages.py --write benchmarks/RESULTS.md

bench-super-convergence: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/super_convergence.py --write benchmarks/RESULTS.md

bench-mnist1d: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/mnist1d_reference.py --write benchmarks/RESULTS.md

bench-integrations: $(STAMP)
	$(VENV)/bin/python benchmarks/integrations.py --write benchmarks/RESULTS.md

bench-lr-finders: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/lr_finders.py --write benchmarks/RESULTS.md

bench-search-cost: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/search_cost.py --write benchmarks/RESULTS.md

bench-ray: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/ray_executor.py --write benchmarks/RESULTS.md

bench-data-parallel: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/data_parallel.py --write benchmarks/RESULTS.md

# The zoo's reference grids (benchmarks/zoo_reference/*.json), for the tasks without a file
# yet: an hour or more, so run it as `nohup make zoo-reference ZOO_ARGS=--commit &`.
zoo-reference: $(STAMP) $(FASHION)
	$(PY) benchmarks/zoo_reference.py --write benchmarks/RESULTS.md $(ZOO_ARGS)

# How far short runs of 1/8, 1/4 and 1/2 of the final length misjudge the max LR, against
# the reference grids (the dev half; ZOO_ARGS="--split test" for the other).
horizon-bias: $(STAMP) $(FASHION)
	$(PY) benchmarks/horizon_bias.py --write benchmarks/RESULTS.md $(ZOO_ARGS)

stage-bias: $(STAMP) $(FASHION)
	$(PY) benchmarks/stage_bias.py --write benchmarks/RESULTS.md $(ZOO_ARGS)

lr-prior: $(STAMP) $(FASHION)
	$(PY) benchmarks/lr_prior.py --write benchmarks/RESULTS.md $(ZOO_ARGS)

# Which weight decay tune starts from: the grids read at the LRs tune's stored 3x draws
# picked (seconds: nothing is trained).
weight-decay-start: $(STAMP)
	$(PY) benchmarks/weight_decay_start.py --write benchmarks/RESULTS.md

# Scores tune, Optuna, the range-test rules and LR-free optimizers against the stored grids
# (benchmarks/decisions/*.json kept per task: --force in BENCH_ARGS remeasures).
bench-decisions: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/bench_decisions.py --write benchmarks/RESULTS.md $(BENCH_ARGS)

# --budget-minutes on the user's clock: the tune command itself, timed from outside.
# tune at a generous budget (30 final trainings) on the zoo's cheapest tasks, scored by the grids
bench-generous: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/generous.py --seeds 0,1 --write benchmarks/RESULTS.md $(BENCH_ARGS)

bench-budget: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/budget_wall.py --write benchmarks/RESULTS.md $(BENCH_ARGS)

# What tune decides on every zoo task at its clock-free default budget (seed 0), into
# benchmarks/tune_default/<the library's last commit>.json; compare two with
# `python benchmarks/tune_default.py --compare BEFORE AFTER`.
tune-default: $(STAMP) $(FASHION)
	$(PY) benchmarks/tune_default.py --out benchmarks/tune_default/$$(git log -1 --format=%h -- src)$$(git status --porcelain -- src | grep -q . && echo -edited).json

# How steady a training step's time is: the plan's 20 timed steps against later blocks.
bench-step-time: $(BENCH_STAMP) $(FASHION)
	$(BENCH_VENV)/bin/python benchmarks/step_time.py --write benchmarks/RESULTS.md $(BENCH_ARGS)

# A 2-node Ray cluster on loopback (head on 127.0.0.2, worker on 127.0.0.3) and a weight-decay
# search on it; stops both nodes afterwards.
ray-cluster: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/ray_two_nodes.sh

clean:
	rm -rf $(VENV) $(BENCH_VENV) runs .pytest_cache .mypy_cache .ruff_cache .hypothesis
