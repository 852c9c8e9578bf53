"""Tracking against a real `mlflow server` process over HTTP: a training run records params, lineage tags, per-step
metrics, system metrics, rollout tables and a model that loads back from the server and generates text; the evaluate
stage then adds per-example tables (every code sample with its verdict and error kind) to that run and links its
metrics to the logged model."""

import mlflow
import pytest
from mlflow import MlflowClient

from components.release.tracking import tracking_uri_scope
from flows import evaluate, train
from tests.helpers.project import write_params
from tests.helpers.servers import mlflow_server, run_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def test_a_training_run_is_recorded_on_the_server(workdir, server, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # the tiny run is over in seconds
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

    assert any(key.startswith("system/cpu_utilization") for key in run.data.metrics), sorted(run.data.metrics)
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"data/train", "data/val"}
    assert {t.key: t.value for t in inputs["data/train"].tags}["content_sha256"] == run.data.tags["data.train.sha256"]

    evaluate.run()
    table = run_table(server, run.info.run_id, "evaluation/code_examples.json")
    assert len(table) == 3 and set(table["status"]) <= {"pass", "fail", "error", "timeout"}
    assert {"completion", "error_kind", "reason", "task_id"} <= set(table.columns)
    assert all(kind for kind, status in zip(table["error_kind"], table["status"], strict=True) if status != "pass")
    model = client.get_logged_model(record["ebft"]["model_uri"].removeprefix("models:/"))
    assert {"eval/val_ce", "eval/fm_alignment", "eval/humaneval_pass_at_1"} <= {m.key for m in model.metrics}
