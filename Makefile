# One entry point for people and CI. `make test` builds everything it needs from scratch.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
# pip's configured find-links holds the local torch CPU wheel on this kind of machine; uv ignores pip.conf,
# so it is passed explicitly. Elsewhere torch comes from the PyTorch CPU index.
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
ifeq ($(strip $(FIND_LINKS)),)
TORCH_SOURCE := --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
else
TORCH_SOURCE := --find-links $(FIND_LINKS)
endif
STAMP := $(VENV)/.installed

.PHONY: setup test lint format bench-sampling lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) || true
	@if [ -x $(BIN)/uv ]; then \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python $(TORCH_SOURCE) -r requirements.lock && \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . ; \
	else \
	  $(BIN)/pip install --quiet -r requirements.lock && $(BIN)/pip install --quiet --no-deps -e . ; \
	fi
	@touch $@
	@echo "environment ready: $(VENV)"

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-sampling: setup
	$(BIN)/python -m benchmarks.sampling --out benchmarks/results/sampling_cpu_L512.json

# Re-resolve the pins after editing requirements.in.
lock: setup
	$(BIN)/uv pip compile --quiet --python-version 3.11 $(TORCH_SOURCE) requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
