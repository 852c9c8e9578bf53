"""Hermetic test settings, in one place: every cache, home and tracking store lives in a temporary folder and
nothing reaches a model hub or telemetry endpoint. Set before any test module imports HF, MLflow or Prefect."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
os.environ.update(HERMETIC_ENV)  # before anything imports huggingface_hub, mlflow or prefect (they read it once)

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers.project import link_inputs, write_params  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)


# A tiny but complete project (tiny preset): base model, packed data and feature cache, built once per session.
# Tests work in their own folder that links these read-only inputs and holds its own params and outputs.
@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    from flows import base_model, features, prepare

    root = tmp_path_factory.mktemp("tiny-project")
    params = write_params(root / "params.yaml")
    base_model.run(str(params), root / "models/base", root / "models/tokenizer", root / "metrics/base_model.json")
    prepare.run(str(params), root / "models/tokenizer", root / "data", root / "metrics/data_card.json")
    features.run(str(params), root / "data", root / "models/base", root / "features", root / "metrics/features.json")
    return root


@pytest.fixture
def workdir(tiny_project, tmp_path, monkeypatch) -> Path:
    """A fresh working folder over the tiny project's inputs (cwd is set to it)."""
    link_inputs(tiny_project, tmp_path)
    write_params(tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    return tmp_path


def pytest_collection_modifyitems(config, items):
    """GPU checks are skipped, saying why, where there is no CUDA GPU (they run under `make gpu-check`)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: run `make gpu-check` on a machine with one")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
