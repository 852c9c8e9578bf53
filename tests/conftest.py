"""Hermetic test settings, in one place: every cache, home and tracking store lives in a temporary folder and
nothing reaches a model hub or telemetry endpoint. Set before any test module imports HF, MLflow or Prefect."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

_ROOT = tempfile.mkdtemp(prefix="ebft-tests-")

HERMETIC_ENV = {
    "HF_HOME": f"{_ROOT}/hf",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_TRACKING_URI": f"sqlite:///{_ROOT}/mlruns.db",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PREFECT_HOME": f"{_ROOT}/prefect",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_UI_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "DVC_GLOBAL_CONFIG_DIR": f"{_ROOT}/dvc-global",
    "DVC_SYSTEM_CONFIG_DIR": f"{_ROOT}/dvc-system",
}
os.environ.update(HERMETIC_ENV)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)
