"""The RLVR baseline's code reward: a sampled answer passes its task's unit tests or it does not (docs/method.md §6).

A training document is a function-call task in HumanEval's format: a prompt (code up to a function's body), tests
defining ``check(candidate)``, and the entry point the tests call. The answer is cut at HumanEval's stop sequences,
``prompt + answer`` is defined in the sandbox, and the tests run here in the trainer against the sandboxed function
with plain values (``CodeProblem.run_tests``, the trusted path of docs/evaluation.md): a program cannot forge a pass
of the reward it is trained on.

The reward is pass/fail (1 or 0), not the fraction of tests passed: a dataset's ``check`` is one function whose
asserts share state and stop at the first failure, so a fraction would need the tests rewritten, and it would reward
answers that are right on easy inputs only.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from components.evaluation.code_tasks import HUMANEVAL_STOPS, CodeProblem
from components.evaluation.decoding import truncate_at_stop
from components.evaluation.sandbox import SandboxLimits, require_isolation


def function_call_tasks(documents: Path) -> dict[int, CodeProblem]:
    """The function-call tasks of a split's documents file (``data/<split>.jsonl``), by document id."""
    tasks = {}
    with open(documents, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("tests") is not None:
                tasks[row["doc_id"]] = CodeProblem(
                    "humaneval", row["origin"], row["prompt"], HUMANEVAL_STOPS, row["tests"], row["entry_point"]
                )
    return tasks


class UnitTestReward:
    def __init__(self, tasks: dict[int, CodeProblem], limits: SandboxLimits, workers: int = 2):
        require_isolation(limits)  # before any training step, not at the first reward
        self.tasks, self.limits, self.workers = tasks, limits, workers

    def score(self, answer: str, doc_id: int) -> float:
        task = self.tasks.get(doc_id)
        if task is None:
            raise KeyError(f"document {doc_id} of the training split has no unit tests (data.tests_field)")
        return float(task.run_tests(truncate_at_stop(answer, task.stop), self.limits).status == "pass")

    def __call__(self, answers: list[str], references: list[str], doc_ids: list[int]) -> list[float]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self.score, answers, doc_ids))
