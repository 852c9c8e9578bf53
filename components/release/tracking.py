"""MLflow tracking for one training or evaluation run, through an explicit client and run id (no global active run).

Where runs go: the given URI, else ``MLFLOW_TRACKING_URI``, else a local SQLite file ``mlruns.db`` with artifacts in
``mlartifacts/`` (both in the working directory). Only the main process of a distributed run logs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from components.training.run_log import RunLog, param_value

DEFAULT_DB = "mlruns.db"
DEFAULT_ARTIFACTS = "mlartifacts"
MODEL_PIP_REQUIREMENTS = ["torch==2.13.0", "transformers==5.23.0", "accelerate==1.15.0", "safetensors==0.8.0"]


def resolve_tracking_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def experiment_id(uri: str, name: str) -> str | None:
    found = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    return found.experiment_id if found else None


def git_facts() -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"git_commit": git("rev-parse", "HEAD") or "unknown", "git_dirty": str(bool(git("status", "--porcelain")))}


class RunTracker(RunLog):
    """An MLflow run. Only the main process of a distributed run keeps one; the others write to a plain ``RunLog``."""

    def __init__(self, uri: str | None = None, experiment: str = "ebft", system_metrics: bool = False):
        """``system_metrics``: MLflow samples CPU, memory (and GPU) use into the run while it is open (every 10 s;
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL changes it)."""
        self.uri = resolve_tracking_uri(uri)
        self.experiment = experiment
        self.run_id: str | None = None
        self.client = MlflowClient(tracking_uri=self.uri)
        self.system_metrics = system_metrics
        self._active = None  # the fluent run that carries the system-metrics monitor

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:"):  # a local store: artifacts beside it, not in the working directory root
            location = Path(DEFAULT_ARTIFACTS).resolve().as_uri()
        return self.client.create_experiment(self.experiment, artifact_location=location)

    def start(self, run_name: str, tags: Mapping[str, str], resume_run_id: str | None = None) -> str | None:
        """Start a run (or continue ``resume_run_id`` after a resumed checkpoint); returns its id."""
        if resume_run_id:
            self.client.update_run(resume_run_id, status="RUNNING")
            self.run_id = resume_run_id
        else:
            run = self.client.create_run(self._experiment_id(), run_name=run_name, tags=dict(tags))
            self.run_id = run.info.run_id
        if self.system_metrics:
            with tracking_uri_scope(self.uri):
                self._active = mlflow.start_run(run_id=self.run_id, log_system_metrics=True)
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, param_value(v)) for k, v in params.items()]
        for lo in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[lo : lo + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int, model_id: str | None = None) -> None:
        """``model_id``: the logged model the metrics are about (they then show on it, not only on the run)."""
        now = int(time.time() * 1000)
        # MLflow metric names allow letters, digits and _-. :/ only ("pass@1" -> "pass_at_1")
        batch = [Metric(k.replace("@", "_at_"), float(v), now, step, model_id=model_id)
                 for k, v in metrics.items() if v is not None]  # fmt: skip
        for lo in range(0, len(batch), 500):
            self.client.log_batch(self.run_id, metrics=batch[lo : lo + 500])

    def log_table(self, data: Mapping[str, list], artifact_file: str) -> None:
        with tracking_uri_scope(self.uri):
            mlflow.log_table(dict(data), artifact_file=artifact_file, run_id=self.run_id)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, record: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, record, artifact_file)

    def log_model(self, model, tokenizer, local_dir: str | Path, card: str, name: str = "model") -> str | None:
        """The model as an MLflow transformers model (text-generation); returns its ``models:/`` URI.

        ``local_dir`` is where the model was saved: pointing ``name_or_path`` there (an absolute path, not shaped like
        a hub repo id) and giving our own model ``card`` keeps MLflow from looking the model up on the hub."""
        from huggingface_hub import ModelCard

        model.name_or_path = str(Path(local_dir).resolve())
        quiet = logging.getLogger("mlflow.transformers")  # offline: model-card and license lookups only warn
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with tracking_uri_scope(self.uri), in_run(self.run_id):
                info = mlflow.transformers.log_model(
                    transformers_model={"model": model, "tokenizer": tokenizer},
                    name=name,
                    task="text-generation",
                    model_card=ModelCard(card),
                    pip_requirements=MODEL_PIP_REQUIREMENTS,  # the default inference adds torchvision, which breaks
                )
        finally:
            quiet.setLevel(level)
        return info.model_uri

    def finish(self, status: str = "FINISHED") -> None:
        if self._active is not None:
            with tracking_uri_scope(self.uri):
                mlflow.end_run(status)  # stops the system-metrics monitor
            self._active = None
        if self.run_id:
            self.client.set_terminated(self.run_id, status=status)


def log_evaluation(
    uri: str | None,
    experiment: str,
    metrics: dict[str, dict],
    artifacts: list[Path],
    train_runs: dict[str, dict],
    tables: dict[str, dict[str, dict[str, list]]] | None = None,
) -> None:
    """Each trained model's evaluation metrics into its training run, linked to its logged model (``train_runs``: the
    train stage's summary, which holds the run ids and model URIs); everything into an evaluation run of its own.
    ``tables``: per model, its per-example results ({artifact name: columns}), logged as MLflow tables beside them."""
    numeric = lambda values: {k: v for k, v in values.items() if isinstance(v, int | float)}  # noqa: E731
    tables = tables or {}
    for name, values in metrics.items():
        run_id = train_runs.get(name, {}).get("mlflow_run_id")
        if not run_id:
            continue
        model_uri = train_runs[name].get("model_uri") or ""
        tracker = RunTracker(uri, experiment)
        tracker.start(name, {}, resume_run_id=run_id)
        model_id = model_uri.removeprefix("models:/") or None
        tracker.log_metrics({f"eval/{k}": v for k, v in numeric(values).items()}, step=0, model_id=model_id)
        for path in artifacts:
            tracker.log_artifact(path, "evaluation")
        for table, columns in tables.get(name, {}).items():
            tracker.log_table(columns, f"evaluation/{table}")
        tracker.finish()
    tracker = RunTracker(uri, experiment)
    tracker.start("evaluate", {**git_facts(), "stage": "evaluate", "models": ",".join(metrics)})
    tracker.log_metrics({f"{m}/{k}": v for m, values in metrics.items() for k, v in numeric(values).items()}, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    for name, model_tables in tables.items():
        for table, columns in model_tables.items():
            tracker.log_table(columns, f"{name}/{table}")
    tracker.finish()


def log_data_inputs(uri: str | None, run_ids: list[str], splits: dict[str, tuple[Path, str]],
                    dvc_md5: str | None) -> None:  # fmt: skip
    """The data splits runs used, as MLflow dataset inputs (the run page's "Datasets used"): each split's file, its
    content hash as the digest, and DVC's md5 of data/ (from dvc.lock) as a tag to find that version again."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    tags = {"dvc.data_md5": dvc_md5 or "none (run outside DVC)"}
    with tracking_uri_scope(resolve_tracking_uri(uri)):
        for run_id in run_ids:
            with in_run(run_id):
                for split, (path, digest) in splits.items():
                    dataset = MetaDataset(LocalArtifactDatasetSource(str(Path(path).resolve())), name=f"data/{split}",
                                          digest=digest[:36])  # fmt: skip
                    mlflow.log_input(dataset, context=split, tags={**tags, "content_sha256": digest})


def in_run(run_id: str):
    """The fluent API's active run set to ``run_id``: as it is (training keeps its run open for system metrics), or
    opened for the block."""
    active = mlflow.active_run()
    return nullcontext() if active is not None and active.info.run_id == run_id else mlflow.start_run(run_id=run_id)


class tracking_uri_scope:
    """mlflow's module-level helpers read the global tracking URI; set it only around their calls.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment, and reading the "previous"
    URI back gives MLflow's default (``sqlite:///mlflow.db``) when none was set: restoring that would send every later
    run of the process (and its subprocesses) to another store. So the exact previous state is restored."""

    def __init__(self, uri: str):
        self.uri = uri

    def __enter__(self) -> None:
        from mlflow.tracking._tracking_service import utils

        self.previous = utils._tracking_uri  # None when never set
        self.previous_env = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.uri)

    def __exit__(self, *exc: object) -> None:
        mlflow.set_tracking_uri(self.previous)
        if self.previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self.previous_env
