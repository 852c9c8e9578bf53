"""Where a registered model came from: git commit, dvc.lock, data, params, seed and the runs that made it.

Everything is read from files the pipeline already has (dvc.lock records the hash of every stage's deps and outs), so
the tags identify a result that `git checkout <commit> && dvc repro` reproduces.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from components.data.hashing import sha256_file
from components.release.tracking import git_facts


def _canonical(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def stage_entry(lock: dict, stage: str) -> dict:
    try:
        return lock["stages"][stage]
    except KeyError:
        raise ValueError(f"dvc.lock has no stage {stage!r}: run `dvc repro {stage}` first") from None


def out_hash(entry: dict, path: str) -> str:
    for item in entry.get("deps", []) + entry.get("outs", []):
        if item["path"] == path:
            return item["md5"]
    raise ValueError(f"dvc.lock records no {path!r} for this stage")


def prepared_data_md5(project: Path) -> str | None:
    """DVC's md5 of data/ as the last `prepare` recorded it in dvc.lock; None outside DVC (a one-off run)."""
    lock_path = project / "dvc.lock"
    if not lock_path.exists():
        return None
    try:
        return out_hash(stage_entry(yaml.safe_load(lock_path.read_text()), "prepare"), "data")
    except ValueError:
        return None


def eval_setting_hash(lock: dict) -> str:
    """What the evaluation ran on (held-out data, cached features, eval/layout/feature params): two models are
    comparable example by example only when this matches."""
    entry = stage_entry(lock, "evaluate")
    return _canonical({"data": out_hash(entry, "data"), "features": out_hash(entry, "features"),
                       "params": entry.get("params", {})})  # fmt: skip


def lineage_tags(
    project: Path, model_dir: Path, seed: int, mlflow_run_id: str, flow_run_id: str | None
) -> dict[str, str]:
    lock_path = project / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text())
    weights = model_dir / "model.safetensors"
    return {
        **{f"lineage.{k}": v for k, v in git_facts().items()},
        "lineage.dvc_lock_sha256": sha256_file(lock_path),
        "lineage.inputs_data_md5": out_hash(stage_entry(lock, "prepare"), "inputs/data"),
        "lineage.inputs_models_md5": out_hash(stage_entry(lock, "base_model"), "inputs/models"),
        "lineage.data_md5": out_hash(stage_entry(lock, "prepare"), "data"),
        "lineage.features_md5": out_hash(stage_entry(lock, "features"), "features"),
        "lineage.params_sha256": sha256_file(project / "params.yaml"),
        "lineage.seed": str(seed),
        "lineage.prefect_flow_run_id": flow_run_id or "none (run outside Prefect)",
        "lineage.mlflow_run_id": mlflow_run_id,
        "model.sha256": sha256_file(weights),
        "eval.setting_sha256": eval_setting_hash(lock),
    }
