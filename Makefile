# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m brackit.demo

test: venv
	$(BIN)/ruff check brackit tests benchmarks
	$(BIN)/ruff format --check brackit tests benchmarks
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

format: venv
	$(BIN)/ruff format brackit tests benchmarks
	$(BIN)/ruff check --fix brackit tests benchmarks

bench: venv
	$(BIN)/python benchmarks/data_io.py

clean:
	rm -rf $(VENV) build *.egg-info
