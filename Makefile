# dtb: `make run` installs everything into .venv and runs the default model on 2 MPI ranks;
# `make test` installs and runs the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint bench clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "dtb: creating the virtual environment .venv"
	$(PYTHON) -m venv $(VENV)
	@echo "dtb: installing dtb and its dependencies into .venv (Brian2, MPICH, MuJoCo, nilearn, ...: several minutes the first time)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@echo "dtb: installed; the first simulation compiles the model (up to a minute), later ones use the cache"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dtb run dtb/examples/whole_brain.toml --ranks 2 --out results/whole_brain

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=20

# the fast part (24 s on 2 cores, benchmarks/wall_times.py): no long simulations, no MPI, no Slurm
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not mpi and not slurm"

# ruff over the code, mypy over the public API
lint: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[lint]'
	$(BIN)/ruff check dtb atlas assimilation bridges cluster tests benchmarks
	$(BIN)/mypy dtb/__init__.py dtb/runs.py dtb/memory.py dtb/files.py assimilation/forecast.py

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf results .pytest_cache build *.egg-info
