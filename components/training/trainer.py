"""The training loop EBFT and the SFT baseline share.

Per optimizer step: the step's chunks (a function of seed and step) -> this process's share -> micro-batches, each
(EBFT) rolled out with the current policy and then back-propagated, gradients accumulated (synchronised across
processes on the last micro-batch only) -> clip -> AdamW -> schedule. On-policy: every rollout of a step uses the
weights of the previous optimizer step. accelerate provides devices, DDP/FSDP and bf16 autocast. Metrics go to the
run log (an MLflow run in the pipeline) and a progress bar; checkpoints every N steps and at the end make any kill
resumable.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_scheduler

from components.data.chunk_store import ChunkSplit
from components.data.order import chunk_generators, process_share, step_chunks
from components.engine.policy import StridedPolicy
from components.method.answer_rewards import AnswerReward
from components.method.config import EBFTStepConfig
from components.method.ebft_step import EBFTStep
from components.method.feature_cache import FeatureCache
from components.method.feature_network import FeatureNetwork
from components.method.rlvr_step import RLVRStep
from components.method.sft_step import SFTStep
from components.training import deepspeed_engine
from components.training.checkpointing import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    remove_incompatible_checkpoints,
    remove_partial_checkpoints,
    save_checkpoint,
)
from components.training.config import Method, TrainerConfig
from components.training.lora import merged
from components.training.memory import peak_memory, reset_peak_memory
from components.training.rollout_table import rollout_table
from components.training.run_log import RunLog
from components.training.run_record import TrainingResult
from components.training.sharding import gathered, total_grad_norm


class Trainer:
    def __init__(
        self,
        method: Method,
        config: TrainerConfig,
        ebft: EBFTStepConfig,
        accelerator: Accelerator,
        lm: torch.nn.Module,
        train_split: ChunkSplit,
        *,
        checkpoint_dir: str | Path,
        fingerprint: str,
        tracker: RunLog | None = None,
        feature_network: FeatureNetwork | None = None,
        feature_cache: FeatureCache | None = None,
        reference: torch.nn.Module | None = None,
        reference_is_feature_network: bool = False,
        tokenizer=None,
        answer_reward: AnswerReward | None = None,
        log: Callable[[str], None] = print,
    ):
        self.method, self.cfg, self.accelerator = method, config, accelerator
        if method != "sft" and ebft.forward_mode == "flex" and accelerator.device.type == "cpu":
            raise ValueError(
                "train.forward_mode 'flex' trains only on CUDA: FlexAttention has no backward on CPU (torch 2.13); "
                "use 'cached' here"
            )
        self.chunks_per_step = config.chunks_per_step(ebft.sampling.n_samples)
        self.split, self.cache, self.tokenizer, self.log = train_split, feature_cache, tokenizer, log
        self.checkpoint_dir, self.fingerprint = Path(checkpoint_dir), fingerprint
        self.tracker = tracker or RunLog()
        opt = self.cfg.optimizer
        policy = StridedPolicy(lm)
        trainable = [p for p in policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable, lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay, eps=opt.eps
        )
        self.scheduler = get_scheduler(
            self.cfg.scheduler.name,
            self.optimizer,
            num_warmup_steps=math.ceil(self.cfg.scheduler.warmup_ratio * self.cfg.steps),
            num_training_steps=self.cfg.steps,
        )
        self.deepspeed = deepspeed_engine.uses_deepspeed(accelerator)
        if self.deepspeed:
            deepspeed_engine.configure(accelerator, config.micro_batch_chunks, config.grad_clip)
        # The scheduler is stepped by hand once per optimizer step (accelerate's wrapper would step it once per
        # process), so only model and optimizer are prepared; the scheduler is registered for checkpoints.
        self.policy, self.optimizer = accelerator.prepare(policy, self.optimizer)
        accelerator.register_for_checkpointing(self.scheduler)
        self.step_runner = step_runner(method, self.policy, ebft, feature_network, reference,
                                       reference_is_feature_network, tokenizer, answer_reward)  # fmt: skip

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @contextmanager
    def trained_model(self, adapter_dir: Path | None = None) -> Iterator[torch.nn.Module | None]:
        """The trained language model with full weights and LoRA merged. Every process must enter this (under FSDP
        the weights are gathered); under FSDP2 only the main process gets the model, the others None.
        ``adapter_dir``: the LoRA adapter alone is saved there too, by the main process."""
        main = self.accelerator.is_main_process
        with gathered(self.policy, self.accelerator.unwrap_model(self.policy).lm) as lm:
            yield None if lm is None else merged(lm, adapter_dir if main else None).eval()

    def _restore(self) -> TrainingState:
        state = TrainingState(step=0, fingerprint=self.fingerprint)
        if self.cfg.resume == "never":
            return state
        path, message = latest_checkpoint(self.checkpoint_dir, self.fingerprint)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.log(f"[{self.method}] {message}")
            for leftover in remove_partial_checkpoints(self.checkpoint_dir):
                self.log(f"[{self.method}] removed {leftover} (a checkpoint write that did not finish)")
            for stale in remove_incompatible_checkpoints(self.checkpoint_dir, self.fingerprint):
                self.log(f"[{self.method}] removed {stale} (made with other params, data or base model)")
        self.accelerator.wait_for_everyone()
        return load_checkpoint(self.accelerator, path) if path is not None else state

    def run(self, run_name: str, tags: dict[str, str], params_to_log: dict) -> TrainingResult:
        start = time.perf_counter()
        acc = self.accelerator
        if acc.is_main_process:
            self.log(f"[{self.method}] {acc.num_processes} process(es) on {acc.device.type}, "
                     f"{acc.distributed_type.value}, mixed precision {acc.mixed_precision}")  # fmt: skip
        state = self._restore()
        resumed = state.mlflow_run_id
        state.mlflow_run_id = self.tracker.start(run_name, tags, resume_run_id=resumed)
        if not resumed:
            self.tracker.log_params(params_to_log)
        bar = tqdm(
            total=self.cfg.steps,
            initial=state.step,
            desc=f"train {self.method}",
            unit="step",
            disable=not self.accelerator.is_main_process,
        )
        try:
            for step in range(state.step, self.cfg.steps):
                metrics = self._train_step(step)
                state.step = step + 1
                state.history.append({"step": state.step, **metrics})
                self.tracker.log_metrics(metrics, step=state.step)
                bar.update(1)
                bar.set_postfix({k: f"{metrics[k]:.4f}" for k in ("reward", "ce") if k in metrics})
                every = self.cfg.checkpoint_every
                if state.step == self.cfg.steps or (every and state.step % every == 0):
                    save_checkpoint(self.accelerator, self.checkpoint_dir, state, keep=self.cfg.keep_checkpoints)
        except BaseException as err:
            self.tracker.finish("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            bar.close()
        return TrainingResult(self.method, state.step, state.history, state.mlflow_run_id, time.perf_counter() - start)

    def _train_step(self, step: int) -> dict[str, float]:
        cfg, acc = self.cfg, self.accelerator
        indices = step_chunks(step, self.chunks_per_step, len(self.split), cfg.seed)
        mine, positions = process_share(indices, acc.process_index, acc.num_processes)
        n_micro = len(mine) // cfg.micro_batch_chunks
        reset_peak_memory(self.device)
        totals: dict[str, float] = defaultdict(float)
        step_start = time.perf_counter()
        for j in range(n_micro):
            part = slice(j * cfg.micro_batch_chunks, (j + 1) * cfg.micro_batch_chunks)
            batch = self.split.batch(mine[part]).to(self.device)
            sync = nullcontext() if j == n_micro - 1 else acc.no_sync(self.policy)
            with sync, acc.autocast():
                if self.method in ("ebft", "rlvr"):
                    gens = chunk_generators(cfg.seed, step, positions[part], self.device)
                    use_cache = self.method == "ebft" and self.cache
                    gt = self.cache.features("train", mine[part]).to(self.device) if use_cache else None
                    rollout = self.step_runner.rollout(batch, gens, gt)
                    update_start = time.perf_counter()
                    loss, metrics = self.step_runner.loss(rollout)
                    self._maybe_log_samples(step, j, rollout)
                    totals["tokens/sample"] += rollout.sampled_tokens
                    totals["tokens/update"] += batch.input_ids.numel() + rollout.sampled_tokens
                else:
                    update_start = time.perf_counter()
                    loss, metrics = self.step_runner.loss(batch)
                    totals["tokens/update"] += batch.input_ids.numel()
                if self.deepspeed:
                    deepspeed_engine.backward(self.policy, loss / n_micro, last_micro_batch=j == n_micro - 1)
                else:
                    acc.backward(loss / n_micro)
            totals["time/update_s"] += time.perf_counter() - update_start
            for key, value in metrics.items():
                totals[key] += value / n_micro if not key.startswith("time/") else value
        grad_norm = self._clip_and_step()
        return self._finish_metrics(totals, grad_norm, time.perf_counter() - step_start)

    def _clip_and_step(self) -> float:
        params = [p for p in self.policy.parameters() if p.requires_grad]
        if self.deepspeed:  # the engine has clipped and stepped in backward
            norm = deepspeed_engine.grad_norm(self.policy)
        elif self.cfg.grad_clip is not None:
            norm = self.accelerator.clip_grad_norm_(params, self.cfg.grad_clip)
        else:
            norm = total_grad_norm(params)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def _finish_metrics(self, totals: dict[str, float], grad_norm: float, step_s: float) -> dict[str, float]:
        acc = self.accelerator
        keys = sorted(totals)
        values = torch.tensor([totals[k] for k in keys], dtype=torch.float64, device=self.device)
        if acc.num_processes > 1:
            # means of means across equal shares; token counts and times add up over processes
            summed = acc.reduce(values, reduction="sum")
            values = torch.where(
                torch.tensor([k.startswith(("tokens/", "time/")) for k in keys], device=self.device),
                summed,
                summed / acc.num_processes,
            )
        metrics = dict(zip(keys, values.tolist(), strict=True))
        sample_s, features_s, update_s = (metrics.get(f"time/{k}", 0.0) for k in ("sample_s", "features_s", "update_s"))
        if sample_s:
            metrics["tokens_per_s/sample"] = metrics["tokens/sample"] / sample_s
        if features_s:
            metrics["tokens_per_s/features"] = metrics["tokens/update"] / features_s
        if update_s:
            metrics["tokens_per_s/update"] = metrics["tokens/update"] / update_s
        metrics["grad_norm"] = grad_norm
        metrics["lr"] = self.scheduler.get_last_lr()[0]
        metrics["time/step_s"] = step_s
        metrics["peak_memory_mb"] = peak_memory(self.device)
        return metrics

    def _maybe_log_samples(self, step: int, micro: int, rollout) -> None:
        every = self.cfg.log_samples_every
        due = every and ((step + 1) % every == 0 or step + 1 == self.cfg.steps)
        if due and micro == 0 and self.accelerator.is_main_process and self.tokenizer is not None:
            self.tracker.log_table(rollout_table(rollout, self.tokenizer), f"rollouts/step_{step + 1:05d}.json")


def step_runner(
    method: Method,
    policy: torch.nn.Module,
    ebft: EBFTStepConfig,
    feature_network: FeatureNetwork | None,
    reference: torch.nn.Module | None,
    reference_is_feature_network: bool,
    tokenizer=None,
    answer_reward: AnswerReward | None = None,
) -> EBFTStep | SFTStep | RLVRStep:
    """What one micro-batch runs: the EBFT or RLVR step (rollout, then loss) or the SFT baseline's CE step."""
    if method == "sft":
        return SFTStep(
            policy,
            ebft.layout,
            document_masking=ebft.document_masking,
            qa_masking=ebft.qa_masking,
            chunk_size=ebft.logit_chunk_size,
        )
    if method == "rlvr":
        if tokenizer is None:
            raise ValueError("RLVR training needs the tokenizer (its rewards compare decoded answers)")
        return RLVRStep(policy, ebft, tokenizer, reward=answer_reward, reference=reference)
    if feature_network is None:
        raise ValueError("EBFT training needs the frozen feature network")
    return EBFTStep(
        policy, feature_network, ebft, reference=reference, reference_is_feature_network=reference_is_feature_network
    )
