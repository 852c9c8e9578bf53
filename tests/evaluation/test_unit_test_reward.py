"""The RLVR code reward: function-call tasks read from a prepared split (the user's JSONL with tests, and HumanEval),
answers scored by their unit tests in the sandbox with the verdict outside it: a correct solution 1, a wrong one 0,
code that forges a pass 0."""

import json

import pytest

from components.data.model_loading import train_tiny_tokenizer
from components.data.offline_sources import HumanEvalSource
from components.data.packing import prepare_chunks
from components.data.sources import JsonlSource
from components.evaluation.sandbox import SandboxLimits
from components.evaluation.unit_test_reward import UnitTestReward, function_call_tasks

TASK = {
    "prompt": 'def add_three(x: int) -> int:\n    """x + 3"""\n',
    "solution": "    return x + 3\n",
    "test": "def check(candidate):\n    assert candidate(1) == 4\n    assert candidate(-3) == 0\n",
    "entry": "add_three",
}
ANSWERS = {
    "correct": "    return x + 3\n",
    "correct, then more text after a stop": "    return 3 + x\n\n\ndef unrelated():\n    raise SystemExit\n",
    "wrong": "    return x + 2\n",
    "syntax error": "    return x +\n",
    "forged pass (always-equal object)": (
        "    class Yes:\n        def __eq__(self, other):\n            return True\n    return Yes()\n"
    ),
    "exits before the tests run": "    import os\n    os._exit(0)\n",
}
EXPECTED = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """data/ as the prepare stage writes it, from a user's JSONL of function-call tasks (plus one plain Q&A row)."""
    root = tmp_path_factory.mktemp("tasks")
    rows = [{"q": TASK["prompt"], "a": TASK["solution"], "t": TASK["test"], "e": TASK["entry"]}]
    rows += [{"q": f"def f{i}(x):\n", "a": f"    return x * {i}\n", "t": TASK["test"], "e": f"f{i}"} for i in range(8)]
    (root / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = JsonlSource([str(root / "tasks.jsonl")], prompt_field="q", completion_field="a", tests_field="t",
                         entry_point_field="e")  # fmt: skip
    data = prepare_chunks(source.records(), train_tiny_tokenizer(), seq_len=16, val_fraction=0.0, test_fraction=0.0,
                          max_chunks={"train": None, "val": None, "test": None})  # fmt: skip
    (root / "data").mkdir()
    data.save(root / "data")
    return root / "data"


def test_tasks_come_from_the_prepared_split_with_their_tests(prepared):
    tasks = function_call_tasks(prepared / "train.jsonl")
    assert len(tasks) == 9
    [task] = [t for t in tasks.values() if t.entry_point == "add_three"]
    assert task.prompt == TASK["prompt"] and task.tests == TASK["test"] and task.task_id.endswith("tasks.jsonl:1")


def test_answers_are_rewarded_by_their_tests_and_a_forged_pass_is_not(prepared):
    tasks = function_call_tasks(prepared / "train.jsonl")
    [doc] = [d for d, t in tasks.items() if t.entry_point == "add_three"]
    reward = UnitTestReward(tasks, SandboxLimits.per_run(5.0, 1024, True), workers=2)
    rewards = reward(list(ANSWERS.values()), [""] * len(ANSWERS), [doc] * len(ANSWERS))
    assert dict(zip(ANSWERS, rewards, strict=True)) == dict(zip(ANSWERS, EXPECTED, strict=True))
    with pytest.raises(KeyError, match="document 999 of the training split has no unit tests"):
        reward(["    return x\n"], [""], [999])


def test_humaneval_documents_carry_their_tests_and_the_canonical_solution_passes(tmp_path):
    first = next(iter(HumanEvalSource().records()))
    row = {"doc_id": 0, "origin": first.origin, "prompt": first.prompt, "completion": first.completion,
           "tests": first.tests, "entry_point": first.entry_point}  # fmt: skip
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    reward = UnitTestReward(function_call_tasks(tmp_path / "train.jsonl"), SandboxLimits.per_run(10.0, 1024, True))
    assert reward([first.completion, "    return []\n"], ["", ""], [0, 0]) == [1.0, 0.0]
