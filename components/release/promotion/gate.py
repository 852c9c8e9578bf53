"""The promotion gate: does the challenger really beat the champion?

On the primary metric the paired bootstrap interval of the improvement must lie above ``min_delta`` (significant at
``confidence``); on every guard metric the interval must show, at the same confidence, that it did not get worse by
more than its tolerance. With no champion yet, the challenger is promoted. The decision carries every number, so it
can be written as registry tags and read later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.release.config import GateConfig
from components.release.promotion.bootstrap import BootstrapResult, paired_bootstrap
from components.release.promotion.metrics import gate_metric
from components.release.promotion.scores import load_scores


@dataclass
class GateDecision:
    promote: bool
    reason: str
    primary: BootstrapResult | None = None
    guards: dict[str, tuple[BootstrapResult, bool]] = field(default_factory=dict)

    def as_tags(self, prefix: str = "gate") -> dict[str, str]:
        """Flat string tags for the registry (MLflow version tags)."""
        tags = {f"{prefix}.decision": "promote" if self.promote else "keep", f"{prefix}.reason": self.reason}
        results = {"primary": self.primary} if self.primary else {}
        results |= {f"guard.{name}": result for name, (result, _) in self.guards.items()}
        for label, result in results.items():
            for key, value in result.as_dict().items():
                tags[f"{prefix}.{label}.{key}"] = f"{value:.6g}" if isinstance(value, float) else str(value)
        return tags


def compare(challenger_dir: Path, champion_dir: Path, metric_name: str, cfg: GateConfig) -> BootstrapResult:
    metric = gate_metric(metric_name)
    new, old = load_scores(challenger_dir, metric), load_scores(champion_dir, metric)
    shared = sorted(set(new.values) & set(old.values))
    if len(shared) < cfg.min_examples:
        raise ValueError(
            f"{metric_name}: only {len(shared)} examples were scored for both models (gate.min_examples="
            f"{cfg.min_examples}); evaluate both on the same, larger set"
        )
    return paired_bootstrap(
        np.array([new.values[k] for k in shared]),
        np.array([old.values[k] for k in shared]),
        np.array([new.weights[k] for k in shared]),
        higher_is_better=metric.higher_is_better,
        resamples=cfg.resamples,
        confidence=cfg.confidence,
        seed=cfg.seed,
    )


def decide(challenger_dir: str | Path, champion_dir: str | Path | None, cfg: GateConfig) -> GateDecision:
    """Gate ``challenger_dir`` (its per-example eval files) against ``champion_dir`` (None: there is no champion)."""
    if champion_dir is None:
        return GateDecision(True, "first model: there is no champion yet")
    challenger_dir, champion_dir = Path(challenger_dir), Path(champion_dir)
    guards = {}
    try:
        primary = compare(challenger_dir, champion_dir, cfg.primary, cfg)
        for name, tolerance in cfg.guards.items():
            result = compare(challenger_dir, champion_dir, name, cfg)
            guards[name] = (result, result.low >= -tolerance)
    except (ValueError, FileNotFoundError) as err:
        return GateDecision(False, f"not comparable: {err}")

    pct = f"{cfg.confidence:.0%}"
    if primary.low <= cfg.min_delta:
        reason = (
            f"{cfg.primary}: improvement {primary.delta:+.4g} is not significant "
            f"({pct} CI [{primary.low:+.4g}, {primary.high:+.4g}] does not clear {cfg.min_delta:g})"
        )
        return GateDecision(False, reason, primary, guards)
    broken = [name for name, (_, holds) in guards.items() if not holds]
    if broken:
        details = ", ".join(
            f"{n} change {guards[n][0].delta:+.4g} ({pct} CI low {guards[n][0].low:+.4g} < -{cfg.guards[n]:g})"
            for n in broken
        )
        return GateDecision(False, f"guard regressed: {details}", primary, guards)
    reason = f"{cfg.primary}: {primary.delta:+.4g} ({pct} CI [{primary.low:+.4g}, {primary.high:+.4g}]); guards hold"
    return GateDecision(True, reason, primary, guards)
