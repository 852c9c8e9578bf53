"""The whole job as one Prefect flow: stages through DVC, then the registry and the promotion gate.

    python -m flows.pipeline [--project DIR] [--set KEY=VALUE ...] [--lock-wait SECONDS]

Before the stages: overrides (``--set``, or the deployment's ``overrides`` parameter) are validated and written into
params.yaml, the one file the stages read and DVC tracks; the inputs in inputs/ are refreshed (imports updated from
their source, new or edited data recorded as a DVC version); `dvc pull` restores what the remote has.
DVC decides what reruns (a stage whose deps and params are unchanged is skipped exactly as `dvc repro` would); Prefect
owns retries and run history; MLflow owns runs, versions and aliases. One run per project at a time (a lock). Data
sync with a DVC remote and the registry calls retry with backoff (infrastructure); the stages never do (deterministic
compute fails the same way twice). Every run leaves a markdown report as a Prefect artifact and in reports/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from components.evaluation.report import comparison_rows
from components.params.loading import load_params
from components.params.overrides import apply_overrides, parse_set_flags, with_overrides
from components.params.schema import Params
from components.project import dvc
from components.project.code_deps import dvc_yaml_problems
from components.project.inputs import check_inside_inputs, refresh
from components.release.pipeline_report import (
    StageOutcome,
    console_summary,
    link_targets,
    mlflow_links,
    render,
    write_report,
)
from components.release.promotion.register import NotComparable, PromotionResult, register_and_gate
from components.release.registry import ModelRegistry, unreachable
from components.release.run_lock import project_lock
from components.release.tracking import experiment_id, resolve_tracking_uri
from flows.stage_progress import StageProgress

STAGES = ("base_model", "prepare", "features", "train", "evaluate")
BACKOFF = [5, 20, 60]


def infrastructure_failure(task, task_run, state) -> bool:
    """Retry only what a flaky server or network explains; a bug or bad input fails the same way again."""
    try:
        state.result()
    except Exception as err:  # classify, then let Prefect record it
        return unreachable(err)
    return False


@task(name="dvc-sync", retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def sync_data(direction: str) -> str:
    """``dvc pull`` before / ``dvc push`` after, when a DVC remote is configured (remote storage: retried)."""
    return dvc.sync(direction)


@task(name="refresh-inputs", retries=3, retry_delay_seconds=BACKOFF, cache_policy=NO_CACHE)
def refresh_inputs() -> str:
    """Imports brought up to date with their source, new or edited data in inputs/ recorded as a DVC version (an
    import's source may be remote storage: retried)."""
    summary = refresh(Path.cwd(), str(dvc.BIN / "dvc")).summary()
    get_run_logger().info(summary)
    return summary


@task(name="dvc-repro-stage", task_run_name="repro-{stage}", retries=0, cache_policy=NO_CACHE)
def repro_stage(stage: str) -> StageOutcome:
    start = time.perf_counter()
    try:
        ran = dvc.repro_stage(stage, on_output=StageProgress(stage).feed)
    except dvc.StageFailed as failed:  # the stage's own error, in the run's log (the UI shows no stdout)
        get_run_logger().error("%s", failed)
        raise
    get_run_logger().info("stage %s: %s", stage, "ran" if ran else "unchanged, skipped")
    return StageOutcome(stage, ran, time.perf_counter() - start)


@task(name="register-and-gate", retries=3, retry_delay_seconds=BACKOFF, retry_condition_fn=infrastructure_failure,
      cache_policy=NO_CACHE)  # fmt: skip
def registry_step(uri: str, flow_run_id: str | None) -> PromotionResult:
    params = load_params("params.yaml")
    registry = ModelRegistry(uri, params.registry.name)

    def champion_on_this_runs_data(champion: ModelVersion, scratch: Path) -> Path:
        """New data or eval settings since the champion was gated: score it again, as the evaluate stage would."""
        from components.evaluation.suite import IncomparableModel  # torch and the models: only when gating
        from flows.evaluate import evaluate_other_model

        print(f"gate: re-evaluating champion v{champion.version} on this run's held-out data")
        model_dir = registry.download_model(champion, scratch / "model")
        try:
            return evaluate_other_model(model_dir, scratch / "eval", name=f"champion-v{champion.version}")
        except IncomparableModel as err:
            raise NotComparable(str(err)) from err

    return register_and_gate(
        registry, Path.cwd(), params.registered_method, params.registry.gate, params.train.seed, flow_run_id,
        reevaluate=champion_on_this_runs_data,
    )  # fmt: skip


def preflight(project: Path, overrides: dict[str, Any]) -> Params:
    """Everything that can be refused is refused before the lock or any stage: bad params or overrides, a local input
    DVC cannot see, code deps in dvc.yaml that no longer match the imports. Returns the params the run will use."""
    params = with_overrides(project / "params.yaml", overrides)
    check_inside_inputs(params, project)
    stale = dvc_yaml_problems(project / "dvc.yaml")
    if stale:
        raise ValueError("dvc.yaml's code deps differ from the imports; run `make deps`:\n" + "\n".join(stale))
    return params


@flow(name="ebft-pipeline", log_prints=True)
def pipeline(project_dir: str = ".", overrides: dict[str, Any] | None = None, lock_wait_s: float = 0.0) -> dict:
    """Refresh the inputs, reproduce what changed, register the trained model as `challenger`, gate it against
    `champion`, report. ``overrides`` (dotted keys, e.g. ``{"train.steps": 100}``) are written into params.yaml."""
    project = Path(project_dir).resolve()
    os.chdir(project)  # stages, DVC and the default MLflow store all work relative to the project
    params = preflight(project, overrides or {})
    uri, run_id = resolve_tracking_uri(params.tracking.uri), flow_run.id
    with project_lock(project / ".ebft" / "pipeline.lock", wait_s=lock_wait_s, holder=f"flow run {run_id}"):
        changes = apply_overrides(project / "params.yaml", overrides or {})
        inputs = refresh_inputs()
        notes = [*(f"params.yaml override {change}" for change in changes), inputs, sync_data("pull")]
        stages = [repro_stage(stage) for stage in STAGES]
        notes.append(sync_data("push"))
        promotion = registry_step(uri, run_id) if params.registry.enabled else None

    eval_path = project / "metrics/eval.json"
    eval_metrics = json.loads(eval_path.read_text())["models"] if eval_path.exists() else {}
    version, run = (promotion.version, promotion.mlflow_run_id) if promotion else (None, None)
    links = mlflow_links(uri, params.registry.name, version, run, experiment_id(uri, params.tracking.experiment))
    report = render(stages, eval_metrics, promotion, links, params.registry.gate.primary, notes)
    write_report(project / "reports/latest.md", report)
    if run_id:
        create_markdown_artifact(report, key="ebft-pipeline-report", description="EBFT pipeline run")
        if eval_metrics:
            create_table_artifact(comparison_rows(eval_metrics), key="ebft-comparison",
                                  description="evaluation: base vs trained models (metrics/eval.json)")  # fmt: skip
        for key, (text, url) in link_targets(links).items():
            create_link_artifact(url, link_text=text, key=key, description=f"MLflow: {text}")
    summary = {
        "overrides": changes,
        "inputs": inputs,
        "stages": {s.stage: "ran" if s.ran else "skipped" for s in stages},
        "promotion": asdict(promotion) if promotion else None,
        "report": str(project / "reports/latest.md"),
        "tracking_uri": uri,
    }
    # on the console itself, not only in Prefect's log (log_prints turns print() into log records)
    sys.stdout.write(console_summary(summary, params.registry.name, links) + "\n")
    sys.stdout.flush()
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default=".", help="project folder (holds dvc.yaml and params.yaml)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a parameter for this run, e.g. --set train.steps=100 (written into params.yaml; repeatable)",
    )  # fmt: skip
    parser.add_argument("--lock-wait", type=float, default=0.0, help="seconds to wait for a running pipeline")
    args = parser.parse_args(argv)
    try:
        overrides = parse_set_flags(args.overrides)
        preflight(Path(args.project).resolve(), overrides)  # refused in seconds, before Prefect starts
    except ValueError as err:
        sys.exit(f"error: {err}")
    state = pipeline(args.project, overrides, args.lock_wait, return_state=True)
    if state.is_failed():
        sys.exit(f"pipeline failed: {state.message}")


if __name__ == "__main__":
    main()
