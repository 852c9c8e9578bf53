# One entry point for people and CI. `make test` builds everything it needs from scratch.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
# requirements.lock pins torch==2.13.0 with no local label, so one lock takes whichever build the torch source gives
# (a CUDA build already installed also satisfies it and is kept). Where torch comes from, first match wins:
#   TORCH_INDEX=<url>   an explicit PyTorch index, e.g. https://download.pytorch.org/whl/cu128
#   a GPU (nvidia-smi)  PyPI itself: its Linux x86_64 torch 2.13.0 is the CUDA build
#   pip's find-links    the local CPU wheel on this project's CI machines (uv ignores pip.conf, so it is passed)
#   otherwise           the PyTorch CPU index (no multi-GB CUDA download on a CPU-only machine)
TORCH_INDEX ?=
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifneq ($(strip $(TORCH_INDEX)),)
TORCH_SOURCE := --extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match
else ifeq ($(HAS_GPU),yes)
TORCH_SOURCE :=
else ifneq ($(strip $(FIND_LINKS)),)
TORCH_SOURCE := --find-links $(FIND_LINKS)
else
TORCH_SOURCE := --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
endif
STAMP := $(VENV)/.installed

.PHONY: setup test lint format gpu-check bench-sampling lock deps clean run mlflow-ui prefect-server deploy worker serve registry rollback

# No telemetry from the tools; a slow first start of Prefect's temporary local API is not an error.
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= true
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000

# --compile-bytecode: the .pyc files are written once here. Where PYTHONDONTWRITEBYTECODE is set (this project's CI
# machines), every process would otherwise compile torch and transformers from source again: about 18 s instead of
# 5 s to start each stage, server and test subprocess.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) || true
	@if [ -x $(BIN)/uv ]; then \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(TORCH_SOURCE) -r requirements.lock && \
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
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# On a machine with a CUDA GPU: the GPU tests, then the benchmarks in GPU mode (JSON in benchmarks/results/*_gpu.json).
gpu-check: setup
	@$(BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA GPU here')"
	$(BIN)/python -m pytest -m gpu -q tests/gpu
	$(BIN)/python -m benchmarks.sampling --device cuda --seq-len 1024 --out benchmarks/results/sampling_gpu.json
	$(BIN)/python -m benchmarks.train_step --device cuda --shape qwen2.5-1.5b --seq-len 1024 \
		--out benchmarks/results/train_step_gpu.json
	$(BIN)/python -m benchmarks.checkpointed_forward --device cuda --out benchmarks/results/checkpointed_forward_gpu.json
	$(BIN)/python -m benchmarks.attention --device cuda --out benchmarks/results/attention_gpu.json

bench-sampling: setup
	$(BIN)/python -m benchmarks.sampling --out benchmarks/results/sampling_cpu_L512.json

# Rewrite each stage's code deps in dvc.yaml from its imports (after adding an import; tests fail until then).
deps: setup
	$(BIN)/python -m components.project.code_deps write

# Re-resolve the pins after editing requirements.in. The torch pin is written without its local label (+cpu) so the
# same lock installs the CPU wheel here and a CUDA build on a GPU machine (tests/project/test_project_files.py checks it).
# It is always resolved against the CPU build: a CUDA resolution would add nvidia-* pins that CPU machines then install.
LOCK_SOURCE := $(if $(strip $(FIND_LINKS)),--find-links $(FIND_LINKS),--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
lock: setup
	grep -E '^torch==' requirements.in | sed -E 's/ *(#.*)?$$/+cpu/' > $(VENV)/torch-cpu.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 $(LOCK_SOURCE) -c $(VENV)/torch-cpu.txt requirements.in \
	  -o requirements.lock
	sed -i -E 's/^(torch==[^+ ]+)\+[A-Za-z0-9.]+/\1/' requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
