"""A stage run as its own Prefect flow (flows/stages.py) does what the DVC stage command does, and Prefect records it:
the flow run completes and returns the stage's record. (In a subprocess: Prefect's temporary API server then starts
and stops with it.)"""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.project import ROOT, write_params

pytestmark = pytest.mark.slow

SCRIPT = """
import json
from flows.stages import base_model_flow
state = base_model_flow(params_path="params.yaml", return_state=True)
print("RESULT", json.dumps({"completed": state.is_completed(), "card": state.result()}))
"""


def test_a_stage_runs_as_a_prefect_flow(tmp_path):
    write_params(tmp_path / "params.yaml")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["completed"] and result["card"]["spec"] == "tiny:llama"
    assert (tmp_path / "models/base/config.json").exists() and (tmp_path / "metrics/base_model.json").exists()
