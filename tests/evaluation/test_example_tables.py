"""Per-example evaluation tables: one row per code sample with its verdict and error kind, one per translation."""

import json

from components.evaluation.example_tables import error_kind, example_tables


def test_a_models_results_become_one_row_per_sample_and_per_translation(tmp_path):
    code = [
        {"task": "humaneval", "task_id": "HumanEval/0", "n": 2, "passed": 1, "verdict": "outside the sandbox",
         "samples": [{"completion": "    return 1\n", "status": "pass", "reason": ""},
                     {"completion": "    return\n", "status": "fail", "reason": "AssertionError: "}]},
        {"task": "mbpp", "task_id": "mbpp_1", "n": 1, "passed": 0, "verdict": "outside the sandbox",
         "samples": [{"completion": "x", "status": "timeout", "reason": "no result after 10 s wall clock"}]},
    ]  # fmt: skip
    (tmp_path / "code.jsonl").write_text("".join(json.dumps(r) + "\n" for r in code))
    pair = {"source": "Haus", "reference": "house", "hypothesis": "home", "bleu": 0.0, "chrf": 20.0}
    (tmp_path / "translation.jsonl").write_text(json.dumps(pair) + "\n")
    tables = example_tables(tmp_path)
    rows = tables["code_examples.json"]
    assert rows["task_id"] == ["HumanEval/0", "HumanEval/0", "mbpp_1"] and rows["sample"] == [0, 1, 0]
    assert rows["status"] == ["pass", "fail", "timeout"] and rows["error_kind"] == ["", "AssertionError", "timeout"]
    assert tables["translation_examples.json"] == {k: [v] for k, v in pair.items()} | {"chrf": [20.0]}
    assert example_tables(tmp_path / "nothing") == {}


def test_error_kind_is_the_exception_name_or_the_status():
    assert error_kind("error", "IndentationError: unindent does not match") == "IndentationError"
    assert error_kind("error", "killed by signal 9 (memory?)") == "error"
    assert error_kind("pass", "") == ""
