# Every target creates the virtual environment first when it is missing or out of date.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: train test test-all bench time-to-knn docs docs-serve lint format clean

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

# Every benchmarks/bench_*.py in turn: timings and ratios against targets, written with the
# machine and date to benchmarks/results/cpu.md (the site's Results page). Exits 1 if a target
# does not hold (the page is written all the same).
bench: $(VENV)/.installed
	$(PY) benchmarks/record_results.py benchmarks/results/cpu.md benchmarks/bench_*.py

time-to-knn: $(VENV)/.installed  ## wall time of MNIST ORL to kNN 0.97 (orl_mnist_fast); ARGS=overrides
	$(PY) benchmarks/time_to_knn.py $(ARGS)

docs: $(VENV)/.installed  ## the documentation site (mkdocs.yml), into site/
	$(VENV)/bin/mkdocs build --strict

docs-serve: $(VENV)/.installed  ## the site, served at http://127.0.0.1:8000 while you edit docs/
	$(VENV)/bin/mkdocs serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
