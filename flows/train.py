"""Stage ``train``: EBFT and/or the SFT baseline from the base model on the packed chunks, tracked in MLflow.

Writes models/trained/<method>/ (plain HF folders), metrics/train.json (final figures) and
metrics/train_curves/<method>.csv (per-step curves). With ``train.num_processes > 1`` it relaunches itself under
``accelerate launch``. Everything that can be checked is checked before any compute: params, the feature cache's key,
the feature network's layers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from components.data.atomic_io import atomic_directory, atomic_write_json
from components.data.chunk_store import load_split
from components.data.model_loading import load_model, load_tokenizer, weights_sha256
from components.method.feature_cache import FeatureCache, make_cache_key
from components.method.feature_network import FeatureNetwork
from components.params.schema import Params, load_params
from components.project.code_deps import code_hash
from components.release.tracking import RunTracker, flatten, git_facts
from components.training.lora import add_lora
from components.training.trainer import Trainer, TrainingResult
from flows.features import feature_network_dir
from flows.stage_cli import stage_main

ROOT = Path(__file__).resolve().parents[1]
CURVE_COLUMNS = (
    "step",
    "loss",
    "ce",
    "kl",
    "reward",
    "alignment",
    "diversity",
    "pg_loss",
    "grad_norm",
    "lr",
    "time/step_s",
)


def relaunch(params_path: str, params: Params) -> dict:
    """Run this stage again under ``accelerate launch`` with ``train.num_processes`` processes."""
    cfg = params.train
    with socket.socket() as s:  # a free rendezvous port, so parallel runs do not collide
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", str(cfg.num_processes)]
    config = cfg.accelerate_config or (
        None if torch.cuda.is_available() else str(ROOT / "infra/accelerate/cpu_ddp.yaml")
    )
    launcher += ["--config_file", config] if config else ["--multi_gpu"]
    launcher += ["--main_process_port", str(port), "-m", "flows.train", "--params", params_path]
    print(f"train: relaunching with {cfg.num_processes} processes: {' '.join(launcher)}")
    done = subprocess.run(launcher)
    if done.returncode != 0:
        raise RuntimeError(f"distributed training failed (accelerate launch exit {done.returncode}); see output above")
    return json.loads(Path("metrics/train.json").read_text())


def new_accelerator(params: Params) -> Accelerator:
    setting = params.train.mixed_precision
    precision = ("bf16" if torch.cuda.is_available() else "no") if setting == "auto" else setting
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=precision)


def run_fingerprint(params: Params, base_sha: str, data_sha: str) -> str:
    """Everything a checkpoint must share with this run to be resumed from."""
    relevant = {
        # the train stage's own code (its import closure and requirements.lock): the files its DVC deps list, so a
        # checkpoint is resumed exactly when DVC would not rerun the stage for a code change
        "code": code_hash("train"),
        "train": params.train.model_dump(
            exclude={"resume", "checkpoint_every", "keep_checkpoints", "log_samples_every"}
        ),
        "layout": params.layout.model_dump(),
        "features": params.features.model_dump(),
        "seq_len": params.data.seq_len,
        "base_model": base_sha,
        "data": data_sha,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def prepare_policy(model_dir: str, params: Params, device: torch.device) -> torch.nn.Module:
    lm = load_model(model_dir, "float32", device)  # fp32 master weights; bf16 comes from autocast on GPU
    if params.train.gradient_checkpointing:
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if params.train.lora.enabled:
        lm = add_lora(lm, params.train.lora)
    return lm.train()


def write_curves(folder: Path, results: dict[str, TrainingResult]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for method, result in results.items():
        with open(folder / f"{method}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in result.history:
                writer.writerow({k: row.get(k, "") for k in CURVE_COLUMNS})


def summary(result: TrainingResult, steps_per_epoch: float) -> dict:
    """First/last step figures and per-epoch means: with a small training set, steps differ mostly by which chunks
    they drew, while epoch means compare the same chunks before and after learning."""
    keys = ("loss", "ce", "kl", "reward", "alignment", "diversity", "grad_norm", "time/step_s", "peak_memory_mb")
    first, last = result.history[0], result.history[-1]
    epochs: dict[int, list[dict]] = {}
    for row in result.history:
        epochs.setdefault(int((row["step"] - 1) // steps_per_epoch), []).append(row)
    by_epoch = {
        str(epoch + 1): {
            k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("reward", "ce", "kl") if k in rows[0]
        }
        for epoch, rows in epochs.items()
        if len(rows) >= steps_per_epoch  # complete epochs only
    }
    return {
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        "mlflow_run_id": result.run_id,
        "first": {k: first[k] for k in keys if k in first},
        "final": {k: last[k] for k in keys if k in last},
        "epoch_means": by_epoch,
    }


def model_card(method: str, params: Params, facts: dict) -> str:
    return (
        f"# {method.upper()} fine-tune of {params.model.base}\n\n"
        f"Trained by the EBFT pipeline (`{method}`, {facts['steps']} steps) on `{params.data.source}` chunks of "
        f"{params.data.seq_len} tokens. MLflow run `{facts['mlflow_run_id']}`.\n"
    )


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
    cfg = params.train
    if cfg.num_processes > 1 and "LOCAL_RANK" not in os.environ:
        return relaunch(params_path, params)
    accelerator = new_accelerator(params)
    main = accelerator.is_main_process
    set_seed(cfg.seed)
    device = accelerator.device
    layout = params.strided_layout()
    tokenizer = load_tokenizer(model_dir)
    train_split = load_split(data_dir, "train")
    base_sha = weights_sha256(model_dir)

    feature_network = cache = None
    tags = {**git_facts(), "base_model.sha256": base_sha, "data.train.sha256": train_split.content_hash()}
    if "ebft" in cfg.methods:
        network_dir = feature_network_dir(params, model_dir)
        network_model = load_model(network_dir, params.features.dtype, device)
        feature_network = FeatureNetwork(network_model, params.features.feature_config())
        key = make_cache_key(
            weights_sha256(network_dir), feature_network, {"train": train_split}, layout, params.layout.document_masking
        )
        cache = FeatureCache.open(features_dir, key)  # refuses a cache built for anything else, before compute
        tags["features.cache_digest"] = json.loads((Path(features_dir) / "index.json").read_text())["digest"]
    fingerprint = run_fingerprint(params, base_sha, train_split.content_hash())
    tags["params.sha256"] = hashlib.sha256(params.model_dump_json().encode()).hexdigest()

    results: dict[str, TrainingResult] = {}
    record: dict = {}
    with atomic_directory(out_dir) if main else nullcontext(None) as out:
        for method in cfg.methods:
            accelerator = new_accelerator(params)  # one per method: its checkpoints hold only this method's state
            lm = prepare_policy(model_dir, params, device)
            # KL to the frozen base model: the default feature network is that model, so its forward gives the
            # reference log-probs (KL is always reported); another feature network needs a reference of its own.
            base_is_features = params.features.network == "base"
            reference = None
            if method == "ebft" and cfg.loss.kl_coef > 0 and not base_is_features:
                reference = load_model(model_dir, "float32", device).requires_grad_(False)
            tracker = RunTracker(params.tracking.uri, params.tracking.experiment, enabled=main)
            trainer = Trainer(
                method,
                params,
                accelerator,
                lm,
                train_split,
                checkpoint_dir=Path(checkpoint_root) / method,
                fingerprint=f"{fingerprint}/{method}",
                tracker=tracker,
                feature_network=feature_network,
                feature_cache=cache,
                reference=reference,
                reference_is_feature_network=base_is_features,
                tokenizer=tokenizer,
            )
            result = trainer.run(
                run_name=f"{method}",
                tags={**tags, "method": method, "stage": "train"},
                params_to_log=flatten(params.model_dump()),
            )
            results[method] = result
            record[method] = summary(result, steps_per_epoch=len(train_split) / params.chunks_per_step)
            with trainer.trained_model() as final:
                if main:
                    final.save_pretrained(out / method, safe_serialization=True)
                    tokenizer.save_pretrained(out / method)
                    if params.tracking.log_model:
                        card = model_card(method, params, record[method])
                        record[method]["model_uri"] = tracker.log_model(final, tokenizer, out / method, card)
                    tracker.log_dict(record[method], "train_summary.json")
                    tracker.finish("FINISHED")
                    print(f"[{method}] {result.steps} steps in {result.seconds:.1f} s; final {record[method]['final']}")
            accelerator.wait_for_everyone()
            del trainer, lm, reference
    if main:
        write_curves(Path(curves_dir), results)
        atomic_write_json(metrics_path, record)
        # Checkpoints exist to resume an unfinished run; the stage's outputs are committed now.
        for method in cfg.methods:
            shutil.rmtree(Path(checkpoint_root) / method, ignore_errors=True)
    accelerator.wait_for_everyone()
    return record


def main(argv: list[str] | None = None) -> None:
    stage_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
