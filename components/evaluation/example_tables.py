"""Per-example evaluation results as tables (one column per field) for MLflow's table view: every code sample with
its verdict and error kind, every translation with its reference and scores. Read from a model's eval/<model>/ folder,
which the evaluate stage writes."""

from __future__ import annotations

import json
from pathlib import Path


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def error_kind(status: str, reason: str) -> str:
    """'' for a pass; else the exception's name ('AssertionError', 'SyntaxError', ...) or the status ('timeout')."""
    if status == "pass":
        return ""
    name = reason.split(":", 1)[0].strip()
    return name if name.isidentifier() else status


def code_table(records: list[dict]) -> dict[str, list]:
    columns: dict[str, list] = {k: [] for k in ("task", "task_id", "sample", "completion", "status", "error_kind",
                                                "reason", "verdict")}  # fmt: skip
    for record in records:
        for i, sample in enumerate(record["samples"]):
            row = {"task": record["task"], "task_id": record["task_id"], "sample": i,
                   "completion": sample["completion"], "status": sample["status"],
                   "error_kind": error_kind(sample["status"], sample["reason"]), "reason": sample["reason"],
                   "verdict": record.get("verdict", "")}  # fmt: skip
            for key, value in row.items():
                columns[key].append(value)
    return columns


def translation_table(records: list[dict]) -> dict[str, list]:
    keys = ("source", "reference", "hypothesis", "chrf", "bleu")
    return {k: [r[k] for r in records] for k in keys}


def example_tables(folder: Path) -> dict[str, dict[str, list]]:
    """{artifact name: columns} for what ``folder`` (eval/<model>/) holds; empty tables are left out."""
    tables = {}
    if code := _rows(folder / "code.jsonl"):
        tables["code_examples.json"] = code_table(code)
    if translations := _rows(folder / "translation.jsonl"):
        tables["translation_examples.json"] = translation_table(translations)
    return tables
