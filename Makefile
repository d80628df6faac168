# The two commands of the README's quick start: `make demo` and `make test`.
# Each creates .venv (Python >= 3.11) and installs mldeck with what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Without an NVIDIA GPU, keep torch to the CPU build (see constraints-cpu.txt).
TORCH_CONSTRAINT := $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)

.PHONY: setup demo test lint check clean

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mldeck needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_CONSTRAINT) -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/mldeck demo

# The checks, then the tests: what CI runs (.ci/run).
test: lint
	$(BIN)/python -m pytest -n 2

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
