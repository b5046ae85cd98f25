# The two set-up commands of the README: `make demo` and `make test`.
# Each creates its own virtual environment (.venv) with Python >= 3.11 and installs the project.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck bench clean

$(BIN)/cname-flow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/cname-flow
	$(BIN)/cname-flow demo

test: $(BIN)/cname-flow
	$(BIN)/python -m pytest -q

lint: $(BIN)/cname-flow
	$(BIN)/ruff check .

typecheck: $(BIN)/cname-flow
	$(BIN)/mypy

bench: $(BIN)/cname-flow
	$(BIN)/python bench/sandbox_load.py
	$(BIN)/python bench/journal.py
	$(BIN)/python bench/bind_latency.py
	$(BIN)/python bench/batch.py

clean:
	rm -rf $(VENV) build *.egg-info
