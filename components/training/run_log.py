"""The run record the training loop writes to, whatever keeps it.

``RunLog`` itself keeps nothing (tests, benchmarks, the non-main processes of a distributed run); the MLflow tracker
(components/release/tracking.py) subclasses it. The loop only knows this interface, so training never depends on the
tracking backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def param_value(value: Any) -> str:
    """A setting as an MLflow param: lists and dicts as JSON, the rest as text, within MLflow's 6000 characters."""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)[:6000]


class RunLog:
    def start(self, run_name: str, tags: Mapping[str, str], resume_run_id: str | None = None) -> str | None:
        """Start a run (or continue ``resume_run_id`` after a resumed checkpoint); returns its id."""
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_table(self, data: Mapping[str, list], artifact_file: str) -> None:
        pass

    def log_dict(self, record: Any, artifact_file: str) -> None:
        pass

    def log_model(self, model, tokenizer, local_dir: str | Path, card: str, name: str = "model") -> str | None:
        """Keep the trained model; returns where it can be loaded from, if anywhere."""
        return None

    def finish(self, status: str = "FINISHED") -> None:
        pass
