"""The markdown report of one pipeline run: what ran or was skipped, the metrics against the champion, the promotion
decision and where to look in MLflow. It becomes a Prefect artifact and reports/latest.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from components.evaluation.report import comparison_table
from components.release.promotion.register import PromotionResult


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    ran: bool
    seconds: float


def mlflow_links(uri: str, name: str, version: str | None, run_id: str | None, experiment_id: str | None) -> list[str]:
    """Browser links for an HTTP tracking server; for a local store, first the command that serves the UI."""
    links = []
    base = uri.rstrip("/")
    if not uri.startswith(("http://", "https://")):
        base = "http://127.0.0.1:5000"
        links.append(f"MLflow UI: `mlflow ui --backend-store-uri {uri}`, then open {base}")
    if version:
        links.append(f"registered model: {base}/#/models/{quote(name)}/versions/{version}")
    if run_id and experiment_id:
        links.append(f"training run: {base}/#/experiments/{experiment_id}/runs/{run_id}")
    return links


def link_targets(links: list[str]) -> dict[str, tuple[str, str]]:
    """The browser links among ``mlflow_links`` as {artifact key: (text, url)}."""
    targets = {}
    for link in links:
        text, _, url = link.partition(": ")
        if url.startswith(("http://", "https://")):
            targets[f"ebft-{text.replace(' ', '-')}"] = (text, url)
    return targets


def gate_table(result: PromotionResult) -> str:
    tags = result.gate_tags
    rows = []
    for label in sorted({k.split(".")[1] + "." + k.split(".")[2] if k.startswith("gate.guard.") else "primary"
                         for k in tags if k.startswith(("gate.primary.", "gate.guard."))}):  # fmt: skip
        prefix = f"gate.{label}."

        def get(key: str, prefix: str = prefix) -> str:
            return tags.get(prefix + key, "")

        metric = label.removeprefix("guard.") if label.startswith("guard.") else "primary"
        rows.append(
            f"| {metric} | {get('champion')} | {get('challenger')} | {get('delta')} | [{get('low')}, {get('high')}] "
            f"| {get('examples')} |"
        )
    if not rows:
        return ""
    head = "| gate metric | champion | challenger | improvement | CI | examples |\n|---|---|---|---|---|---|\n"
    return head + "\n".join(rows) + "\n"


def render(
    stages: list[StageOutcome],
    eval_metrics: dict[str, dict[str, float]],
    promotion: PromotionResult | None,
    links: list[str],
    primary_metric: str,
    notes: list[str],
) -> str:
    lines = ["# EBFT pipeline run", "", "## Stages", "", "| stage | | seconds |", "|---|---|---|"]
    lines += [f"| {s.stage} | {'ran' if s.ran else 'skipped (unchanged)'} | {s.seconds:.1f} |" for s in stages]
    lines += ["", *[f"- {line}" for line in notes]] if notes else []
    lines += ["", "## Evaluation (base vs trained)", "", comparison_table(eval_metrics) if eval_metrics else "none"]
    lines += ["## Registry and promotion gate", ""]
    if promotion is None:
        lines.append("registry disabled (registry.enabled: false)")
    else:
        p = promotion
        before = f"v{p.previous_champion}" if p.previous_champion else "none"
        what = f"new version v{p.version}" if p.newly_registered else f"no new version (model already v{p.version})"
        lines += [
            f"- model `{p.name}`: {what}; decision **{p.decision}** — {p.reason}",
            f"- champion: v{p.champion} (before this run: {before})" if p.champion else "- no champion",
            f"- primary metric: `{primary_metric}`; compared with: v{p.compared_with}"
            if p.compared_with not in (None, "none")
            else f"- primary metric: `{primary_metric}`",
            *[f"- cleanup: {c}" for c in p.cleaned],
            "",
            gate_table(p),
        ]
    lines += ["## Links", "", *[f"- {link}" for link in links], ""]
    return "\n".join(line for line in lines if line is not None)


def write_report(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def console_summary(summary: dict, name: str, links: list[str]) -> str:
    """The block a pipeline run ends with on the console: what ran, what was registered, where to look."""
    p = summary["promotion"]
    lines = ["", "=" * 72, "EBFT pipeline finished"]
    lines += [f"  {summary['inputs']}"] + [f"  override {change}" for change in summary["overrides"]]
    lines += ["  stages: " + ", ".join(f"{k} {v}" for k, v in summary["stages"].items())]
    lines += [f"  metrics table: metrics/comparison.md   report: {summary['report']}"]
    if p:
        lines += [
            f"  registered: {name} v{p['version']} ({'new' if p['newly_registered'] else 'unchanged'}) "
            f"@challenger; gate: {p['decision']} ({p['reason']})",
            f"  champion: {name} v{p['champion']}; load it with "
            f"mlflow.transformers.load_model('models:/{name}@champion')",
        ]
    lines += [f"  {link}" for link in links] + ["=" * 72]
    return "\n".join(lines)
