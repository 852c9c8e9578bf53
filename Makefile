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

.PHONY: setup test lint format bench-sampling lock clean run mlflow-ui prefect-server deploy worker serve registry rollback

# No telemetry from the tools; a slow first start of Prefect's temporary local API is not an error.
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= true
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000

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

# The main job on the embedded defaults: DVC stages (skipping what is unchanged), MLflow registry and promotion gate.
run: setup
	@test -d .dvc || { echo "not a DVC project here: clone the repository (it carries .dvc/)"; exit 1; }
	$(BIN)/python -m flows.pipeline

# The MLflow UI over the local store that `make run` writes (runs, metrics, models, registry).
mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --port $(MLFLOW_PORT)

# A local Prefect server (UI at http://127.0.0.1:$(PREFECT_PORT)); schedules need one.
prefect-server: setup
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# Scheduled retraining from infra/prefect.yaml on a process work pool, run by `make worker`.
deploy: setup
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:$(PREFECT_PORT)/api} $(BIN)/prefect work-pool create ebft-local --type process --overwrite
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:$(PREFECT_PORT)/api} EBFT_PROJECT_DIR=$(CURDIR) $(BIN)/prefect --no-prompt deploy --all --prefect-file infra/prefect.yaml

worker: setup
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:$(PREFECT_PORT)/api} $(BIN)/prefect worker start --pool ebft-local

# One process that is both deployment and worker: `make prefect-server` in one terminal, `make serve` in another.
serve: setup
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:$(PREFECT_PORT)/api} $(BIN)/python -m flows.serve

registry: setup
	$(BIN)/python -m flows.registry status

rollback: setup
	$(BIN)/python -m flows.registry rollback

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
