"""Tracking against a real `mlflow server` process over HTTP: a training run records params, lineage tags, per-step
metrics, rollout tables and a model that loads back from the server and generates text."""

import mlflow
import pytest
from mlflow import MlflowClient

from components.release.tracking import tracking_uri_scope
from flows import train
from tests.helpers.project import write_params
from tests.helpers.servers import mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def test_a_training_run_is_recorded_on_the_server(workdir, server, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    write_params(
        workdir / "params.yaml",
        {
            "train": {"methods": ["ebft"], "steps": 2, "log_samples_every": 1},
            "tracking": {"uri": server, "experiment": "server-test"},
        },
    )
    record = train.run()
    client = MlflowClient(tracking_uri=server)
    run = client.get_run(record["ebft"]["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["method"] == "ebft" and len(run.data.tags["base_model.sha256"]) == 64
    assert run.data.params["tracking.uri"] == server
    assert [m.step for m in client.get_metric_history(run.info.run_id, "reward")] == [1, 2]
    tables = [a.path for a in client.list_artifacts(run.info.run_id, "rollouts")]
    assert tables == ["rollouts/step_00001.json", "rollouts/step_00002.json"]

    with tracking_uri_scope(server):
        generator = mlflow.transformers.load_model(record["ebft"]["model_uri"])
        out = generator("def add(a, b):", max_new_tokens=8, do_sample=False)
    assert out[0]["generated_text"].startswith("def add(a, b):") and len(out[0]["generated_text"]) > 14
