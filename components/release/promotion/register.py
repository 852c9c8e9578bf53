"""Register the trained model as a new `challenger` version and gate it against the `champion`.

Idempotent: a model whose weights are already registered is not registered again (a pipeline run where nothing
changed leaves the registry as it was). Never half-done: a failure before the aliases move deletes the new version
(components/release/registry.py explains the commit point).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion

from components.release.config import GateConfig
from components.release.lineage import lineage_tags
from components.release.promotion.gate import GateDecision, decide
from components.release.registry import CHAMPION, ModelRegistry, number, project_id

PER_EXAMPLE = "gate/per_example"  # where a version's per-example eval scores live in its training run's artifacts


class NotComparable(Exception):
    """A registered version cannot be scored on this run's evaluation setting (e.g. another tokenizer)."""


# Scores a registered version on the current evaluation setting: (version, scratch folder) -> its per-example folder.
Reevaluate = Callable[[ModelVersion, Path], Path]


@dataclass
class PromotionResult:
    name: str
    version: str
    newly_registered: bool
    decision: str  # promote | keep
    reason: str
    champion: str | None
    previous_champion: str | None
    compared_with: str | None
    mlflow_run_id: str
    gate_tags: dict[str, str] = field(default_factory=dict)
    cleaned: list[str] = field(default_factory=list)


def register_and_gate(
    registry: ModelRegistry,
    project: Path,
    method: str,
    gate: GateConfig,
    seed: int,
    flow_run_id: str | None = None,
    reevaluate: Reevaluate | None = None,
) -> PromotionResult:
    """Register the trained ``method`` and gate it. When the champion was scored on another evaluation setting (new
    data, other eval params), ``reevaluate`` scores it on this run's, so the two are compared on the same examples;
    without it such a challenger is 'not comparable' and the champion stays."""
    cleaned = registry.discard_incomplete(project_id(project))
    trained = json.loads((project / "metrics/train.json").read_text()).get(method)
    if not trained or not trained.get("model_uri"):
        raise ValueError(
            f"metrics/train.json has no logged MLflow model for {method!r}: train it (train.methods) with "
            "tracking.log_model: true before registering"
        )
    run_id = trained["mlflow_run_id"]
    tags = lineage_tags(project, project / "models/trained" / method, seed, run_id, flow_run_id)
    before = registry.alias(CHAMPION)
    existing = registry.find(**{"model.sha256": tags["model.sha256"]})
    if existing is not None:
        return PromotionResult(
            registry.name, number(existing), False, existing.tags.get("gate.decision", "?"),
            f"already registered as v{existing.version} (its gate then: {existing.tags.get('gate.reason', '?')})",
            number(before), number(before),
            existing.tags.get("gate.compared_with"), run_id, cleaned=cleaned,
        )  # fmt: skip

    challenger_dir = project / "eval" / method
    registry.client.log_artifacts(run_id, str(challenger_dir), PER_EXAMPLE)
    version = registry.register(trained["model_uri"], run_id, tags, project_id(project))
    try:
        decision = _decide(registry, before, challenger_dir, tags["eval.setting_sha256"], gate, reevaluate)
        decision_tags = decision.as_tags() | {"gate.compared_with": number(before) or "none"}
        registry.commit(version, decision_tags, decision.promote)
    except BaseException:
        registry.discard(version)  # no alias moved yet: remove the version so nothing is half-registered
        raise
    after = registry.alias(CHAMPION)
    return PromotionResult(
        registry.name, number(version), True, "promote" if decision.promote else "keep", decision.reason,
        number(after), number(before),
        number(before), run_id, decision_tags, cleaned,
    )  # fmt: skip


def _decide(
    registry: ModelRegistry,
    champion: ModelVersion | None,
    challenger_dir: Path,
    setting: str,
    gate: GateConfig,
    reevaluate: Reevaluate | None,
) -> GateDecision:
    if champion is None:
        return decide(challenger_dir, None, gate)
    with tempfile.TemporaryDirectory() as tmp:
        if champion.tags.get("eval.setting_sha256") == setting:
            return decide(challenger_dir, registry.download_run_artifacts(champion, PER_EXAMPLE, Path(tmp)), gate)
        if reevaluate is None:
            return GateDecision(
                False,
                f"not comparable: champion v{champion.version} was evaluated on other held-out data, features or "
                "eval params; check both by hand, then `python -m flows.registry promote --version <v>` if it is "
                "better",
            )
        try:
            champion_dir = reevaluate(champion, Path(tmp))
        except NotComparable as err:
            return GateDecision(False, f"not comparable: champion v{champion.version} {err}")
        decision = decide(challenger_dir, champion_dir, gate)
        decision.reason += f" (champion v{champion.version} re-evaluated on this run's held-out data)"
        return decision
