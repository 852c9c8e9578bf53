"""Stage ``train``: EBFT and/or the SFT baseline from the base model on the packed chunks, tracked in MLflow.

Writes models/trained/<method>/ (plain HF folders), metrics/train.json (final figures) and
metrics/train_curves/<method>.csv (per-step curves). With ``train.num_processes > 1`` it relaunches itself under
``accelerate launch``. Everything that can be checked is checked before any compute: params, the feature cache's key,
the feature network's layers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from accelerate.utils import set_seed

from components.data.chunk_store import load_split
from components.data.model_loading import load_tokenizer, weights_sha256
from components.evaluation.sandbox import SandboxLimits
from components.evaluation.unit_test_reward import UnitTestReward, function_call_tasks
from components.method.feature_cache import FeatureCache, load_feature_network, make_cache_key
from components.params.loading import load_params
from components.project.code_deps import code_hash
from components.release.lineage import prepared_data_md5
from components.release.tracking import RunTracker, git_facts, log_data_inputs
from components.settings import flat_dump
from components.training.checkpointing import run_fingerprint
from components.training.job import JobOutputs, TrainingJob, train_all
from components.training.launch import launched, new_accelerator, relaunch
from components.training.run_log import RunLog
from components.training.run_record import model_card
from flows.stage_cli import stage_main


def run(
    params_path: str = "params.yaml",
    data_dir: str = "data",
    model_dir: str = "models/base",
    features_dir: str = "features",
    out_dir: str = "models/trained",
    metrics_path: str = "metrics/train.json",
    curves_dir: str = "metrics/train_curves",
    checkpoint_root: str = "checkpoints",
) -> dict:
    params = load_params(params_path)
    cfg, layout = params.train, params.strided_layout()
    if cfg.num_processes > 1 and not launched():
        relaunch("flows.train", params_path, cfg)
        return json.loads(Path(metrics_path).read_text())
    accelerator = new_accelerator(cfg.mixed_precision)
    set_seed(cfg.seed)
    split, base_sha = load_split(data_dir, "train"), weights_sha256(model_dir)
    job = TrainingJob(
        cfg, params.ebft_config(), Path(model_dir), split, load_tokenizer(model_dir),
        fingerprint=run_fingerprint(code_hash("train"), params.training_settings(), base_sha, split.content_hash()),
        checkpoint_root=Path(checkpoint_root),
        tags={**git_facts(), "base_model.sha256": base_sha, "data.train.sha256": split.content_hash(),
              "params.sha256": hashlib.sha256(params.model_dump_json().encode()).hexdigest()},
        params_to_log=flat_dump(params),
        features_are_base=params.features.network == "base",
        log_model=params.tracking.log_model,
        model_card=lambda method, facts: model_card(method, params.model.base, params.data.source, layout.seq_len,
                                                    facts),
    )  # fmt: skip
    if "ebft" in cfg.methods:
        job.features, sha = load_feature_network(params.features, model_dir, accelerator.device)
        key = make_cache_key(sha, job.features, {"train": split}, layout, params.layout.document_masking)
        job.cache = FeatureCache.open(features_dir, key)  # refuses a cache built for anything else, before compute
        job.tags["features.cache_digest"] = job.cache.digest
    if "rlvr" in cfg.methods and cfg.rlvr.reward == "unit_tests":
        box = cfg.rlvr.sandbox
        limits = SandboxLimits.per_run(box.timeout_s, box.memory_mb, box.require_namespaces)
        job.answer_reward = UnitTestReward(function_call_tasks(Path(data_dir) / "train.jsonl"), limits, box.workers)
    outputs = JobOutputs(Path(out_dir), Path(metrics_path), Path(curves_dir))
    main = accelerator.is_main_process
    tracking = params.tracking

    def new_run_log() -> RunLog:
        return RunTracker(tracking.uri, tracking.experiment, system_metrics=True) if main else RunLog()

    record = train_all(job, outputs, new_run_log, main)
    if main and any(r.get("mlflow_run_id") for r in record.values()):
        splits = {"train": (Path(data_dir) / "train.safetensors", split.content_hash())}
        if (Path(data_dir) / "val.safetensors").exists():
            splits["val"] = (Path(data_dir) / "val.safetensors", load_split(data_dir, "val").content_hash())
        run_ids = [r["mlflow_run_id"] for r in record.values() if r.get("mlflow_run_id")]
        log_data_inputs(tracking.uri, run_ids, splits, prepared_data_md5(Path.cwd()))
    return record


def main(argv: list[str] | None = None) -> None:
    stage_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
