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
import yaml  # noqa: E402

from components.params.presets import apply_preset  # noqa: E402
from components.params.schema import deep_merge  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)


# A tiny but complete project (tiny preset): base model, packed data and feature cache, built once per session.
# Tests work in their own folder that links these read-only inputs and holds its own params and outputs.
ROOT = Path(__file__).resolve().parents[1]


def write_params(path: Path, overrides: dict | None = None) -> Path:
    params = apply_preset(yaml.safe_load((ROOT / "params.yaml").read_text()), "tiny")
    params = deep_merge(params, overrides or {})
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    from flows import base_model, features, prepare

    root = tmp_path_factory.mktemp("tiny-project")
    params = write_params(root / "params.yaml")
    base_model.run(str(params), root / "models/base", root / "models/tokenizer", root / "metrics/base_model.json")
    prepare.run(str(params), root / "models/tokenizer", root / "data", root / "metrics/data_card.json")
    features.run(str(params), root / "data", root / "models/base", root / "features", root / "metrics/features.json")
    return root


def link_inputs(project: Path, folder: Path) -> Path:
    """Make ``folder`` a working folder over ``project``'s read-only inputs (outputs stay in ``folder``)."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    for name in ("data", "features", "models/base", "models/tokenizer"):
        (folder / name).symlink_to((project / name).resolve())
    return folder


@pytest.fixture
def workdir(tiny_project, tmp_path, monkeypatch) -> Path:
    """A fresh working folder over the tiny project's inputs (cwd is set to it)."""
    link_inputs(tiny_project, tmp_path)
    write_params(tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    return tmp_path
