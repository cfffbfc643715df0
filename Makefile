# The two commands a new user needs (Python 3.11+ and nothing else set up):
#   make demo   create .venv, install aifdata, run `aifdata demo`
#   make test   create .venv, install aifdata for development, run lint, types and every test
# `make test` is .ci/run, what CI runs.
# pyproject.toml declares version ranges; CI installs the exact versions in .ci/constraints.txt
# (`make constraints` rewrites it from .venv), and `make lowest` tests the ranges' lower bounds.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= .ci/constraints.txt

.PHONY: demo test test-unit install lowest constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: the CPU build (an unpinned torch pulls a CUDA build of several GB)
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/aifdata demo

test:
	bash .ci/run

# the fast lane while you work: no server, no subprocess (see README, Tests)
test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest -m unit -n 2

# the unit tests on the oldest versions pyproject.toml admits, in .venv-lowest
lowest: $(VENV)/.installed
	bash .ci/lowest

# after a deliberate upgrade in .venv that passes `make test`: pin what it has for CI
constraints:
	printf '%s\n' "# The exact versions CI installs (make install: pip install -c this file)." \
	    "# pyproject.toml holds the ranges. Regenerate from a venv that passes: make constraints" \
	    "# (torch stays 2.13.0: the Makefile installs that CPU build first)." > $(CONSTRAINTS)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^#' \
	    | sed -E 's/^(torch==[^+]*)\+.*/\1/' | LC_ALL=C sort -f >> $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .venv-lowest
