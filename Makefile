# Every target creates the virtual environment first when it is missing or out of date.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: train test test-all bench time-to-knn lint format clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,slurm,optuna]'
	touch $@

train: $(VENV)/.installed  ## the main job; extra Hydra overrides go in ARGS="loss=orl ..."
	$(PY) -m orbitcl.train $(ARGS)

test: $(VENV)/.installed  ## lint, then the fast test suite
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest -q

test-all: $(VENV)/.installed  ## including tests marked slow
	$(PY) -m pytest -q -m ''

bench: $(VENV)/.installed  ## every benchmarks/bench_*.py in turn: timings, ratios against targets
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

time-to-knn: $(VENV)/.installed  ## wall time of MNIST ORL to kNN 0.97 (orl_mnist_fast); ARGS=overrides
	$(PY) benchmarks/time_to_knn.py $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
