"""Downstream code evaluation: generate completions, run each against its tests in the sandbox, pass@k per problem."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from tqdm.auto import tqdm

from components.evaluation.code_tasks import CodeProblem
from components.evaluation.decoding import DecodingConfig, generate_completions
from components.evaluation.pass_at_k import pass_at_k
from components.evaluation.sandbox import SandboxLimits


def evaluate_code(
    model: torch.nn.Module,
    tokenizer,
    problems: list[CodeProblem],
    decoding: DecodingConfig,
    ks: list[int],
    limits: SandboxLimits,
    workers: int = 2,
) -> list[dict]:
    """One record per problem: n samples, c passing, pass@k for each k, and every sample's status and reason."""
    completions = generate_completions(
        model, tokenizer, [p.prompt for p in problems], [p.stop for p in problems], decoding, desc="code generation"
    )
    jobs = [(p, c) for p, cs in zip(problems, completions, strict=True) for c in cs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            tqdm(
                pool.map(lambda job: job[0].run_tests(job[1], limits), jobs),
                total=len(jobs),
                desc="running tests",
                unit="sample",
            )
        )
    records, i = [], 0
    for problem, samples in zip(problems, completions, strict=True):
        outcome = results[i : i + len(samples)]
        i += len(samples)
        n, c = len(samples), sum(r.status == "pass" for r in outcome)
        records.append(
            {
                "task": problem.task,
                "task_id": problem.task_id,
                "n": n,
                "passed": c,
                "verdict": "outside the sandbox" if problem.verdict_outside_sandbox else "inside the sandbox",
                **{f"pass@{k}": pass_at_k(n, c, k) for k in ks},
                "samples": [
                    {"completion": s, "status": r.status, "reason": r.reason}
                    for s, r in zip(samples, outcome, strict=True)
                ],
            }
        )
    return records


def summarise_code(records: list[dict], ks: list[int]) -> dict:
    out = {}
    for task in sorted({r["task"] for r in records}):
        rows = [r for r in records if r["task"] == task]
        for k in ks:
            out[f"{task}_pass@{k}"] = sum(r[f"pass@{k}"] for r in rows) / len(rows)
        out[f"{task}_problems"] = len(rows)
    return out
