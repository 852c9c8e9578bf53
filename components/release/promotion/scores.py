"""Per-example scores behind each aggregate evaluation metric, for the promotion gate's paired bootstrap.

The evaluate stage writes one JSONL file per metric family in ``eval/<model>/``; a gate metric names which file, which
field is the example's id, which its value and which its weight, and whether higher is better. Aggregates weighted the
same way reproduce metrics/eval.json (e.g. validation CE is token-weighted).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class GateMetric:
    name: str
    file: str
    id_field: str
    value_field: str
    weight_field: str | None
    higher_is_better: bool
    task: str | None = None  # code metrics: only this task's rows


FIXED = {
    "val_ce": GateMetric("val_ce", "validation_ce.jsonl", "chunk", "ce", "tokens", higher_is_better=False),
    "val_answer_ce": GateMetric(
        "val_answer_ce", "validation_ce.jsonl", "chunk", "answer_ce", "answer_tokens", higher_is_better=False
    ),
    "fm_alignment": GateMetric("fm_alignment", "feature_matching.jsonl", "chunk", "alignment", "blocks", True),
    "fm_alignment_best_of_k": GateMetric(
        "fm_alignment_best_of_k", "feature_matching.jsonl", "chunk", "alignment_best_of_k", "blocks", True
    ),
    "fm_cfm_loss": GateMetric("fm_cfm_loss", "feature_matching.jsonl", "chunk", "cfm_loss", "blocks", False),
    "fm_token_match": GateMetric("fm_token_match", "feature_matching.jsonl", "chunk", "token_match", "blocks", True),
    # corpus BLEU is not a mean of sentence scores; the gate tests the sentence-level mean of chrF / BLEU
    "translation_chrf": GateMetric("translation_chrf", "translation.jsonl", "source", "chrf", None, True),
    "translation_bleu": GateMetric("translation_bleu", "translation.jsonl", "source", "bleu", None, True),
}
CODE = re.compile(r"^(humaneval|mbpp|dataframebench)_pass@(\d+)$")


def gate_metric(name: str) -> GateMetric:
    """The per-example definition of ``name``; a clear error lists what is allowed."""
    if name in FIXED:
        return FIXED[name]
    match = CODE.match(name)
    if match:
        return GateMetric(name, "code.jsonl", "task_id", f"pass@{match[2]}", None, True, task=match[1])
    allowed = [*sorted(FIXED), "<task>_pass@<k> with task humaneval | mbpp | dataframebench"]
    raise ValueError(f"unknown gate metric {name!r}; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class Scores:
    """One model's per-example values (and weights) of one metric, keyed by example id."""

    values: dict[str, float]
    weights: dict[str, float]

    def mean(self) -> float:
        w = np.array([self.weights[k] for k in self.values])
        return float(np.dot(w, [self.values[k] for k in self.values]) / w.sum())


def load_scores(eval_dir: str | Path, metric: GateMetric) -> Scores:
    path = Path(eval_dir) / metric.file
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: metric {metric.name!r} needs it (is that metric enabled in params.yaml eval?)"
        )
    values: dict[str, float] = {}
    weights: dict[str, float] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        if metric.task and row.get("task") != metric.task:
            continue
        if metric.value_field not in row:  # e.g. a chunk without answer tokens
            continue
        key = str(row[metric.id_field])
        if key in values:
            raise ValueError(f"{path}:{line_no}: example id {key!r} appears twice")
        values[key] = float(row[metric.value_field])
        weights[key] = float(row[metric.weight_field]) if metric.weight_field else 1.0
    if not values:
        raise ValueError(f"{path} has no rows for metric {metric.name!r}")
    return Scores(values, weights)
