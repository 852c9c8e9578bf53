"""The metrics the promotion gate can test, and where each one's per-example values are.

The evaluate stage writes one JSONL file per metric family in ``eval/<model>/``; a gate metric names which file, which
field is the example's id, which its value and which its weight, and whether higher is better. params.yaml's
``registry.gate`` is validated against this catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


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
