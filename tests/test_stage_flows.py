"""A stage run as its own Prefect flow (flows/stages.py) does what the DVC stage command does, and Prefect records it:
the flow run completes and its return value is the stage's record."""

import pytest

from tests.conftest import write_params

pytestmark = pytest.mark.slow


def test_a_stage_runs_as_a_prefect_flow(tmp_path, monkeypatch):
    from flows.stages import base_model_flow

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml")
    state = base_model_flow(params_path="params.yaml", return_state=True)
    assert state.is_completed()
    card = state.result()
    assert card["spec"] == "tiny:llama" and len(card["weights_sha256"]) == 64
    assert (tmp_path / "models/base/config.json").exists() and (tmp_path / "metrics/base_model.json").exists()
