# Every target creates the virtual environment first when it is missing or out of date.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: train test test-all bench time-to-knn gpu-wheels gpu-check docs docs-serve lint format clean

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

# The GPU check (docs/gpu.md). `gpu-wheels` runs here, with network: the wheels the GPU machines
# lack, for their Python 3.12, into .gpu-wheels/, and the datasets into .gpu-data/ (both ignored
# by git; carry both). `gpu-check` runs there, without network and without this venv: it installs
# the wheels with pip --no-index into the machine's own Python, then runs every part (< 8 min on
# one H100) on a copy of the data (MNIST is extracted there) and writes
# benchmarks/results/gpu.md (also into $$OUT when that is set).
GPU_PYTHON ?= python3
GPU_WHEELS ?= .gpu-wheels
GPU_DATA ?= .gpu-data
GPU_ROOTS := hydra-core omegaconf lightly pytest pytest-xdist

gpu-wheels:  ## needs only pip and packaging: the project's venv if there is one, else $(PYTHON)
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) benchmarks/gpu_wheels.py --wheels $(GPU_WHEELS) --data $(GPU_DATA)

gpu-check:
	$(GPU_PYTHON) -m pip install -q --no-index --no-cache-dir --no-compile \
		--find-links $(GPU_WHEELS) $(GPU_ROOTS) \
		|| echo "gpu-check: installing from $(GPU_WHEELS) failed (make gpu-wheels first); going on"
	data=$${ORBITCL_DATA_DIR:-}; if [ -z "$$data" ]; then \
		data=$$(mktemp -d)/data && cp -r $(GPU_DATA) "$$data"; fi; \
	PYTHONPATH=$(CURDIR)/src WANDB_MODE=disabled PYTHONUNBUFFERED=1 ORBITCL_DATA_DIR="$$data" \
		$(GPU_PYTHON) benchmarks/gpu_check.py $(ARGS); status=$$?; \
		if [ -n "$$OUT" ]; then cp benchmarks/results/gpu.md "$$OUT"/ 2>/dev/null; fi; exit $$status

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
