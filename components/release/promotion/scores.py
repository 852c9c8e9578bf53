"""One model's per-example scores of a gate metric, read from the files the evaluate stage wrote (``eval/<model>/``),
for the promotion gate's paired bootstrap. Aggregates weighted the same way reproduce metrics/eval.json (e.g.
validation CE is token-weighted)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.release.promotion.metrics import GateMetric


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
