"""Downstream code tasks scored by executing their unit tests: HumanEval, MBPP (MultiPL-E typed), DataFrameBench.

A task is chosen by name in params (``eval.code.tasks``), never guessed from a dataset's name. Each problem knows the
prompt the model continues and where its completion stops. HumanEval and MBPP call one function with plain values, so
their tests run in the evaluator against the sandboxed function (``run_tests``: a verdict the program cannot reach);
DataFrameBench's tests need the objects themselves (DataFrames, plot axes), so its program and tests run together in
the sandbox (docs/evaluation.md, "Trusted verdicts").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from components.data.offline_sources import DataFrameBenchSource, HumanEvalSource, MBPPSource
from components.evaluation.config import CodeTask
from components.evaluation.sandbox import RunResult, SandboxLimits, run_calls, run_program

HUMANEVAL_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")  # Chen et al. 2021
FENCE = "\n```"
# DataFrameBench test files end by running unittest.main(), which exits the process; its runner is ours instead.
_UNITTEST_MAIN = re.compile(r"\nif __name__ == [\"']__main__[\"']:\s*\n\s+unittest\.main\(\)\s*\Z")


@dataclass(frozen=True)
class CodeProblem:
    task: CodeTask
    task_id: str
    prompt: str  # the text the model continues
    stop: tuple[str, ...]  # a completion ends before the first of these
    tests: str
    entry_point: str
    reference: str | None = None  # a known-good completion, where the dataset has one

    @property
    def verdict_outside_sandbox(self) -> bool:
        """True where the tests run in the evaluator on plain values (the program cannot forge their verdict)."""
        return self.task in ("humaneval", "mbpp")

    def run_tests(self, completion: str, limits: SandboxLimits) -> RunResult:
        if self.verdict_outside_sandbox:
            return run_calls(self.prompt + completion, self.entry_point, self._tests, limits)
        return run_program(self.program(completion), limits)

    def _tests(self, candidate: Callable) -> None:
        """The dataset's tests, run here against ``candidate``; the prompt's own helpers (e.g. HumanEval/38's
        ``encode_cyclic``) are defined from the dataset's prompt, never from the completion."""
        namespace: dict = {"__name__": "tests"}
        exec(compile(self.prompt, f"{self.task_id} prompt", "exec"), namespace)  # trusted: the dataset's own text
        namespace[self.entry_point] = candidate
        exec(compile(self.tests, f"{self.task_id} tests", "exec"), namespace)
        if self.task == "humaneval":
            namespace["check"](candidate)

    def program(self, completion: str) -> str:
        """The program whose run without exception in the sandbox means the completion passes the tests (completion
        and tests together in one process)."""
        if self.task == "dataframebench":
            return (
                f"{completion}\n\n{self.tests}\n\n"
                "import sys as _sys, unittest as _unittest\n"
                "_suite = _unittest.defaultTestLoader.loadTestsFromTestCase(TestCases)\n"
                "_result = _unittest.TextTestRunner(stream=_sys.stderr, verbosity=0).run(_suite)\n"
                "assert _result.wasSuccessful(), "
                "f'{len(_result.failures)} failed and {len(_result.errors)} errored of {_result.testsRun} tests'\n"
            )
        if self.task == "humaneval":
            return f"{self.prompt}{completion}\n\n{self.tests}\n\ncheck({self.entry_point})\n"
        return f"{self.prompt}{completion}\n\n{self.tests}\n"


def humaneval_problems() -> list[CodeProblem]:
    return [
        CodeProblem(
            "humaneval",
            p["task_id"],
            p["prompt"],
            HUMANEVAL_STOPS,
            p["test"],
            p["entry_point"],
            p["canonical_solution"],
        )
        for p in HumanEvalSource().problems()
    ]


def mbpp_problems() -> list[CodeProblem]:
    """MultiPL-E's MBPP-typed Python (397 problems): tests, but no reference solutions."""
    out = []
    for p in MBPPSource().problems():
        entry = re.search(r"^def (\w+)\(", p["prompt"], flags=re.M).group(1)
        out.append(CodeProblem("mbpp", p["name"], p["prompt"], tuple(p["stop_tokens"]), p["tests"], entry))
    return out


def dataframebench_problems(split: str = "test") -> list[CodeProblem]:
    """DataFrameBench evaluation split (pandas condition). The model answers after the task with a fenced code
    block; the completion is that block's code."""
    source = DataFrameBenchSource()
    out = []
    with open(source.path(split), encoding="utf-8") as f:
        for line in f:
            task = json.loads(line)
            prompt = source.render_prompt(task["prompt"]) + "\n\n```python\n"
            reference = source._SHIM.sub("\n", task["ground_truth"]["pandas"]).strip()
            out.append(
                CodeProblem(
                    "dataframebench",
                    task["task_id"],
                    prompt,
                    (FENCE,),
                    _UNITTEST_MAIN.sub("\n", task["test_code"]),
                    task["entry_point"],
                    reference,
                )
            )
    return out


def load_problems(task: CodeTask) -> list[CodeProblem]:
    loaders = {"humaneval": humaneval_problems, "mbpp": mbpp_problems, "dataframebench": dataframebench_problems}
    if task not in loaders:
        raise ValueError(f"eval.code.tasks: unknown task {task!r}; allowed: {sorted(loaders)}")
    return loaders[task]()
