"""``EBFTTrainer``: EBFT on a model and a dataset in memory, shaped like TRL's trainers (docs/api.md).

    trainer = EBFTTrainer(model, EBFTConfig(max_steps=100), train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    trainer.save_model()

The pipeline's train stage builds this same trainer, from params.yaml (``EBFTConfig.from_settings``), the packed
chunks of the prepare stage and the feature cache. Without a cache the ground-truth features are computed on the fly,
in the same forward as the samples' features. The frozen feature network is by default a copy of the model as it
was given (the paper's choice); it also gives the KL term's reference log-probs. Metrics go to ``run_log`` when one is
given (the stage's MLflow tracker), else to the active MLflow run, else only to the progress bar and the returned
history.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator

from components.data.chunk_store import ChunkSplit
from components.data.in_memory import pack_dataset
from components.engine.masks import answer_blocks
from components.method.answer_rewards import AnswerReward
from components.method.config import EBFTStepConfig
from components.method.feature_cache import FeatureCache
from components.method.feature_network import FeatureNetwork
from components.method.rlvr_step import qa_documents
from components.settings import flat_dump
from components.training.active_run import ActiveRunLog
from components.training.config import Method
from components.training.ebft_config import EBFTConfig
from components.training.launch import new_accelerator, prepare_policy
from components.training.run_log import RunLog
from components.training.run_record import TrainingResult
from components.training.trainer import Trainer

RESUME_ONLY_ARGS = ("output_dir", "run_name", "save_steps", "save_total_limit", "resume", "log_completions_steps")


class EBFTTrainer:
    def __init__(
        self,
        model: torch.nn.Module | str,
        args: EBFTConfig | None = None,
        train_dataset=None,
        processing_class=None,
        peft_config=None,
        *,
        method: Method = "ebft",
        feature_network: FeatureNetwork | torch.nn.Module | None = None,
        feature_network_is_base: bool | None = None,
        feature_cache: FeatureCache | None = None,
        answer_reward: AnswerReward | None = None,
        run_log: RunLog | None = None,
        accelerator: Accelerator | None = None,
        checkpoint_dir: str | Path | None = None,
        fingerprint: str | None = None,
    ):
        """``model``: an HF causal LM, or a folder / hub id to load one from. ``train_dataset``: a
        ``datasets.Dataset`` or a list of dicts (``messages``, ``prompt`` + ``completion``, or ``text`` columns), or
        chunks the prepare stage packed. ``processing_class``: the tokenizer (loaded with the model when it is a
        name). ``peft_config``: a peft ``LoraConfig``; only the adapters train.

        ``method``: 'ebft', or the baselines on the same loop, 'sft' (cross-entropy) and 'rlvr' (rewarded answers).
        ``feature_network``: a frozen model (or FeatureNetwork) other than the model's copy;
        ``feature_network_is_base``: it is the frozen base, so it also gives the KL reference (default: True exactly
        when no feature network is given). ``feature_cache``: ground-truth features the features stage computed.
        ``checkpoint_dir`` (default <output_dir>/checkpoints/<method>) and ``fingerprint`` (what a checkpoint must
        share to be resumed; default: a hash of the args, data and weights)."""
        self.args = args = args or EBFTConfig()
        trainer_cfg, self.step_cfg = args.to_settings()
        if isinstance(model, str):
            model, processing_class = _load(model, processing_class)
        if processing_class is None and method == "rlvr":
            raise ValueError("EBFTTrainer(method='rlvr') needs processing_class: rewards compare decoded answers")
        if train_dataset is None:
            raise ValueError("EBFTTrainer needs a train_dataset")
        if isinstance(train_dataset, ChunkSplit):
            self.chunks = train_dataset
        else:
            if processing_class is None:
                raise ValueError("EBFTTrainer needs processing_class (the tokenizer) to pack train_dataset")
            self.chunks = pack_dataset(
                train_dataset, processing_class, args.max_length, chat_template=args.chat_template
            )
        self.method, self.tokenizer = method, processing_class
        if method == "ebft" and args.completion_only_loss and args.rl_coef > 0:
            _check_answer_blocks(self.step_cfg, self.chunks)
        if method == "rlvr":
            _check_rlvr_prompts(self.chunks, processing_class.eos_token_id)
        self.accelerator = accelerator or new_accelerator(args.mixed_precision)
        device = self.accelerator.device
        model = model.to(device)
        if fingerprint is None and args.resume == "auto":
            fingerprint = _fingerprint(args, method, self.chunks, model)
        features, is_base = None, bool(feature_network_is_base)
        if method == "ebft":
            if feature_network is None:
                features, is_base = FeatureNetwork.frozen_copy_of(model, self.step_cfg.features), True
            elif isinstance(feature_network, FeatureNetwork):
                features = feature_network
            else:
                features = FeatureNetwork(feature_network.to(device), self.step_cfg.features)
        needs_reference = (method == "ebft" and args.beta > 0 and not is_base) or (
            method == "rlvr" and args.rlvr.kl_coef > 0
        )
        reference = copy.deepcopy(model).eval().requires_grad_(False) if needs_reference else None
        if reference is not None and self.accelerator.mixed_precision == "bf16":
            reference = reference.to(torch.bfloat16)  # it runs under bf16 autocast anyway: half the memory
        policy = prepare_policy(model, trainer_cfg.gradient_checkpointing, peft_config)
        self.run_log = run_log or (ActiveRunLog() if ActiveRunLog.available() else RunLog())
        self.loop = Trainer(
            method, trainer_cfg, self.step_cfg, self.accelerator, policy, self.chunks,
            checkpoint_dir=checkpoint_dir or Path(args.output_dir) / "checkpoints" / method,
            fingerprint=fingerprint or "not resumable", tracker=self.run_log, feature_network=features,
            feature_cache=feature_cache, reference=reference, reference_is_feature_network=is_base,
            tokenizer=processing_class, answer_reward=answer_reward,
        )  # fmt: skip
        self.result: TrainingResult | None = None

    @property
    def chunks_per_step(self) -> int:
        return self.loop.chunks_per_step

    def train(self, *, tags: dict[str, str] | None = None, params: dict | None = None) -> TrainingResult:
        """Run ``max_steps`` optimizer steps (from the newest compatible checkpoint when ``resume`` is 'auto').
        Returns the steps done, the per-step metrics (``history``), the MLflow run id and the time taken."""
        logged = params if params is not None else {f"ebft.{k}": v for k, v in flat_dump(self.args).items()}
        self.result = self.loop.run(self.args.run_name or self.method, {"method": self.method, **(tags or {})}, logged)
        return self.result

    @contextmanager
    def trained_model(self, adapter_dir: Path | None = None) -> Iterator[torch.nn.Module]:
        """The trained model with full weights, LoRA merged (every process must enter this under FSDP)."""
        with self.loop.trained_model(adapter_dir) as model:
            yield model

    def save_model(self, output_dir: str | Path | None = None, adapter: bool = False) -> Path:
        """The trained model (and tokenizer) as a plain HF folder, ``output_dir`` or args.output_dir; ``adapter``: the
        LoRA adapter alone too, in <output_dir>/adapter."""
        out = Path(output_dir or self.args.output_dir)
        with self.trained_model(out / "adapter" if adapter else None) as model:
            if self.accelerator.is_main_process:
                model.save_pretrained(out, safe_serialization=True)
                if self.tokenizer is not None:
                    self.tokenizer.save_pretrained(out)
        self.accelerator.wait_for_everyone()
        return out


def _check_answer_blocks(step: EBFTStepConfig, chunks: ChunkSplit) -> None:
    """With completion_only_loss only blocks inside an answer are rewarded: refuse data where there are none (EBFT
    would then train on CE alone, silently)."""
    if not bool(answer_blocks(step.layout, chunks.qa_mask).any()):
        G = step.layout.block_len
        raise ValueError(
            f"completion_only_loss: no block of completion_length={G} tokens lies inside an answer in any of the "
            f"{len(chunks)} chunks, so no sample would be rewarded (answers take {chunks.qa_mask.float().mean():.0%} "
            "of the tokens); use longer answers, a smaller completion_length, or completion_only_loss=False"
        )


def _check_rlvr_prompts(chunks: ChunkSplit, eos_id: int) -> None:
    """RLVR answers the complete prompt + answer documents inside a chunk: refuse chunks that hold none (every step
    would then do nothing, silently)."""
    for i in range(len(chunks)):
        if qa_documents(chunks.input_ids[i], chunks.doc_ids[i], chunks.qa_mask[i], eos_id, limit=1):
            return
    longest = int(torch.bincount(chunks.doc_ids.flatten().long()).max())
    raise ValueError(
        f"method='rlvr': none of the {len(chunks)} chunks of {chunks.seq_len} tokens holds a whole prompt + answer "
        f"document after its first token (the longest document spans at least {longest} tokens), so there is no "
        "prompt to answer; raise max_length (data.seq_len) well above the documents' length"
    )


def _load(name: str, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    return model, tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(name)


def _fingerprint(args: EBFTConfig, method: str, chunks: ChunkSplit, model: torch.nn.Module) -> str:
    """What a checkpoint must share with this run to be resumed: the settings that shape training, the data and
    the starting weights."""
    digest = hashlib.sha256(json.dumps([method, args.model_dump(exclude=set(RESUME_ONLY_ARGS))], default=str).encode())
    digest.update(chunks.content_hash().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
