# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: venv demo test docs lint format bench check-extras clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m brackit.demo

test: venv
	$(BIN)/ruff check brackit tests benchmarks docs/hooks.py
	$(BIN)/ruff format --check brackit tests benchmarks docs/hooks.py
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or reference fails.
# Not --quiet: it drops the warnings that --strict counts, so a broken link would pass.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: venv
	$(BIN)/ruff format brackit tests benchmarks docs/hooks.py
	$(BIN)/ruff check --fix brackit tests benchmarks docs/hooks.py

bench: venv
	$(BIN)/python benchmarks/data_io.py

# Do the extras ports still give their results' numbers? Reruns each results command at the small budget
# (several minutes) against benchmarks/results/extras_check.json; see benchmarks/check_extras.py.
check-extras: venv
	$(BIN)/python benchmarks/check_extras.py

clean:
	rm -rf $(VENV) build site *.egg-info
