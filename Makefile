# The two set-up commands from the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# Build a sample clip and annotate it; prints where the outputs are.
demo: install
	$(BIN)/fer-video demo

test: install-test
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) fer-video-out .pytest_cache
