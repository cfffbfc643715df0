# The two commands a new user needs (Python 3.11+ and nothing else set up):
#   make demo   create .venv, install aifdata, run `aifdata demo`
#   make test   create .venv, install aifdata for development, run lint, types and every test
# `make test` is .ci/run, what CI runs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: the CPU build (an unpinned torch pulls a CUDA build of several GB)
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/aifdata demo

test:
	bash .ci/run

clean:
	rm -rf $(VENV)
