# visionops: the two set-up commands are `make run` (pipeline) and `make test` (test suite).
# Each works alone on a fresh clone: it creates .venv, installs torch FIRST (so no other package pulls a
# different torch build), then the project with its dev extras.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.visionops-installed
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=

export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg

.PHONY: setup run test lint bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
