"""The run record of the Python API: the MLflow run that is active when training starts (``mlflow.start_run()`` in
the user's code), through MLflow's own fluent API. The run is the user's: the trainer never ends it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from components.training.run_log import RunLog, param_value


class ActiveRunLog(RunLog):
    @staticmethod
    def available() -> bool:
        return mlflow.active_run() is not None

    def start(self, run_name: str, tags: Mapping[str, str], resume_run_id: str | None = None) -> str | None:
        run = mlflow.active_run()
        mlflow.set_tags(dict(tags))
        return run.info.run_id if run else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        values = {k: param_value(v) for k, v in params.items()}
        try:
            mlflow.log_params(values)
        except MlflowException as err:  # the run already holds these params with other values (a second train())
            kept = f"EBFTTrainer: the active MLflow run keeps its earlier params ({err.message[:200]})"
            warnings.warn(kept, stacklevel=3)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None}, step=step)

    def log_table(self, data: Mapping[str, list], artifact_file: str) -> None:
        mlflow.log_table(dict(data), artifact_file=artifact_file)

    def log_dict(self, record: Any, artifact_file: str) -> None:
        mlflow.log_dict(record, artifact_file)
