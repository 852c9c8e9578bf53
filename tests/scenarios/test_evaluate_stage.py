"""The evaluate stage on the tiny project: base and trained models scored side by side and logged to their runs."""

import json

import pytest
from mlflow import MlflowClient

from flows import evaluate, train
from tests.helpers.project import write_params


@pytest.mark.slow
def test_the_evaluate_stage_compares_base_and_trained_models(workdir):
    write_params(workdir / "params.yaml")
    train.run()
    record = evaluate.run()
    assert set(record["models"]) == {"base", "ebft", "sft"}
    for name in ("base", "ebft", "sft"):
        values = record["models"][name]
        assert {"val_ce", "val_perplexity", "fm_alignment", "fm_cfm_loss", "humaneval_pass@1"} <= set(values)
        assert values["fm_alignment_best_of_k"] >= values["fm_alignment"]
        code = [json.loads(line) for line in (workdir / "eval" / name / "code.jsonl").read_text().splitlines()]
        assert len(code) == 3 and all(
            s["status"] in ("pass", "fail", "error", "timeout") for r in code for s in r["samples"]
        )
        per_chunk = (workdir / "eval" / name / "validation_ce.jsonl").read_text().splitlines()
        assert len(per_chunk) == record["chunks"]
    table = (workdir / "metrics/comparison.md").read_text()
    assert "| metric | better | base | ebft | sft |" in table and "HumanEval pass@1" in table
    for picture in ("training_curves.png", "alignment_distribution.png"):
        assert (workdir / "metrics/plots" / picture).stat().st_size > 10_000
    assert "namespaces" in record["sandbox"]

    client = MlflowClient()
    run_id = json.loads((workdir / "metrics/train.json").read_text())["ebft"]["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.data.metrics["eval/val_ce"] == pytest.approx(record["models"]["ebft"]["val_ce"])
    assert "eval/humaneval_pass_at_1" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run_id, "evaluation")} >= {"evaluation/comparison.md"}


def test_evaluating_an_untrained_model_is_refused_before_any_work(workdir):
    with pytest.raises(FileNotFoundError, match="holds no model: run `dvc repro train`"):
        evaluate.run()
    assert not (workdir / "eval").exists()
