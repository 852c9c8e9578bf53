"""Paired bootstrap confidence interval for the difference of two models' scores on the same examples.

Resampling examples (not models) keeps each example's pair together, so per-example difficulty cancels: two models
that differ on a few examples out of many get a tight interval, which unpaired intervals would hide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    """``delta`` = improvement of the challenger over the champion (positive = better, whatever the metric's sense)."""

    challenger: float
    champion: float
    delta: float
    low: float
    high: float
    examples: int
    confidence: float

    def as_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(
    challenger: np.ndarray,
    champion: np.ndarray,
    weights: np.ndarray | None = None,
    higher_is_better: bool = True,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile interval of the weighted-mean difference over ``resamples`` draws of the examples with replacement."""
    a, b = np.asarray(challenger, dtype=np.float64), np.asarray(champion, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired scores need two equal, non-empty 1-D arrays; got {a.shape} and {b.shape}")
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=np.float64)
    sign = 1.0 if higher_is_better else -1.0
    diff = sign * (a - b)

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    draws = (diff[idx] * w[idx]).sum(1) / w[idx].sum(1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    mean = lambda x: float(np.dot(w, x) / w.sum())  # noqa: E731
    return BootstrapResult(
        challenger=mean(a),
        champion=mean(b),
        delta=mean(diff),
        low=float(low),
        high=float(high),
        examples=len(a),
        confidence=confidence,
    )
