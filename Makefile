# `make run` and `make test` work on a fresh machine: they create .venv and install what they need
# (once; later calls only check a stamp), the atari extra included (ale-py ships the ROMs, so Atari tests run offline),
# the export extra (onnx, onnxscript, onnxruntime: mode=export's ONNX tests) and the docs extra (mkdocs-material,
# mkdocstrings: the suite builds the docs with --strict). torch==2.13.0 is installed first, and only when torch is
# absent, so an existing CUDA build is kept; pyproject.toml itself asks only for torch>=2.4.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint test-cluster bench docs docs-serve clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,atari,export,docs]"
	touch $(STAMP)

# extra arguments for the default run, e.g. make run ARGS="total_steps=2000 seed=3"
ARGS ?=

run: install
	$(BIN)/rlrun $(ARGS)

# -n auto: one pytest worker per core (pytest-xdist), so the suite uses every core (CI has 2); worksteal: a worker
# that runs out of tests takes some of the other's queue, so one long test near the end does not leave a core idle
test: install
	$(BIN)/python -m pytest -n auto --dist worksteal

# What pre-commit checks (tests/test_code_health.py runs the same): lint, types, and the layers in pyproject.toml
lint: install
	$(BIN)/ruff check rlrun hydra_plugins benchmarks tests
	$(BIN)/ruff format --check rlrun hydra_plugins benchmarks tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# As root: a throwaway one-node SLURM cluster and PostgreSQL server (apt-get installs slurm-wlm, munge and
# postgresql when missing), the tests in tests/cluster/ against them, then everything it started is stopped.
test-cluster: install
	tests/cluster/run.sh

bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/throughput.py --compare sb3
	$(BIN)/python benchmarks/throughput.py --compare sb3 --num-envs 8 --algos dqn

# the docs site (mkdocs.yml, docs/): a broken link, a missing page or a results table naming no result file fails
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: install
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) build site *.egg-info
