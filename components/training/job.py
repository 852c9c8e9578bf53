"""One training job: every method of a run (EBFT, the SFT baseline) trained from the same base model, chunks and
feature cache, then saved as plain HF folders and recorded (summary, curves, the logged model).

Each method gets its own accelerator and checkpoint folder, so a checkpoint holds only that method's state and a
killed job resumes the method it was in. Only the main process writes files; every process trains.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState

from components.data.atomic_io import atomic_directory, atomic_write_json
from components.data.chunk_store import ChunkSplit
from components.data.model_loading import load_model
from components.method.answer_rewards import AnswerReward
from components.method.config import EBFTStepConfig
from components.method.feature_cache import FeatureCache
from components.method.feature_network import FeatureNetwork
from components.training.config import Method, TrainerConfig
from components.training.ebft_config import EBFTConfig
from components.training.ebft_trainer import EBFTTrainer
from components.training.lora import lora_config
from components.training.run_log import RunLog
from components.training.run_record import TrainingResult, summary, write_curves


@dataclass
class TrainingJob:
    config: TrainerConfig
    ebft: EBFTStepConfig
    base_dir: Path
    split: ChunkSplit
    tokenizer: object
    fingerprint: str  # what a checkpoint must share with this job to be resumed from
    checkpoint_root: Path
    tags: dict[str, str] = field(default_factory=dict)
    params_to_log: dict = field(default_factory=dict)
    features: FeatureNetwork | None = None  # EBFT: the frozen feature network and its cache
    cache: FeatureCache | None = None
    answer_reward: AnswerReward | None = None  # RLVR: a reward the method layer cannot build (unit tests); else by name
    # The default feature network is the frozen base model, so its forward also gives the KL reference's log-probs.
    features_are_base: bool = True
    log_model: bool = True
    model_card: Callable[[str, dict], str] = lambda method, facts: f"# {method} fine-tune\n"


@dataclass(frozen=True)
class JobOutputs:
    models: Path  # one HF folder per method
    metrics: Path  # the summary of every method (JSON)
    curves: Path  # one CSV of per-step metrics per method


def train_all(job: TrainingJob, outputs: JobOutputs, new_run_log: Callable[[], RunLog], main: bool) -> dict:
    """Train every configured method; returns {method: summary}. ``new_run_log()`` gives each method's run record;
    ``main``: this is the process that writes. Checkpoints are removed once the outputs are written: they exist to
    resume an unfinished job."""
    results: dict[str, TrainingResult] = {}
    record: dict[str, dict] = {}
    with atomic_directory(outputs.models) if main else nullcontext(None) as out:
        for method in job.config.methods:
            results[method], record[method] = train_method(job, method, new_run_log(), out)
    if main:
        write_curves(outputs.curves, results)
        atomic_write_json(outputs.metrics, record)
        for method in job.config.methods:
            shutil.rmtree(job.checkpoint_root / method, ignore_errors=True)
    PartialState().wait_for_everyone()
    return record


def train_method(job: TrainingJob, method: Method, run_log: RunLog, out: Path | None) -> tuple[TrainingResult, dict]:
    """Train one method with ``EBFTTrainer``; the main process (``out`` given) saves it to ``out/<method>`` and
    logs it."""
    cfg = job.config
    trainer = EBFTTrainer(
        load_model(job.base_dir, "float32"),
        EBFTConfig.from_settings(cfg, job.ebft),
        job.split,
        job.tokenizer,
        lora_config(cfg.lora) if cfg.lora.enabled else None,
        method=method,
        feature_network=job.features,
        feature_network_is_base=job.features_are_base,
        feature_cache=job.cache,
        answer_reward=job.answer_reward,
        run_log=run_log,
        checkpoint_dir=job.checkpoint_root / method,
        fingerprint=f"{job.fingerprint}/{method}",
    )
    result = trainer.train(tags={**job.tags, "stage": "train"}, params=job.params_to_log)
    record = summary(result, steps_per_epoch=len(job.split) / trainer.chunks_per_step)
    keep_adapter = out is not None and cfg.lora.enabled and cfg.lora.save_adapter
    with trainer.trained_model(out / method / "adapter" if keep_adapter else None) as final:
        if out is not None:
            final.save_pretrained(out / method, safe_serialization=True)
            job.tokenizer.save_pretrained(out / method)
            if job.log_model:
                card = job.model_card(method, record)
                record["model_uri"] = run_log.log_model(final, job.tokenizer, out / method, card)
            run_log.log_dict(record, "train_summary.json")
            run_log.finish("FINISHED")
            print(f"[{method}] {result.steps} steps in {result.seconds:.1f} s; final {record['final']}")
    trainer.accelerator.wait_for_everyone()
    return result, record
