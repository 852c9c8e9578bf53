"""``EBFTConfig``: the settings of ``EBFTTrainer`` in one flat object, named as TRL names them where the meaning is the
same (``learning_rate``, ``max_steps``, ``num_generations``, ``beta``, ``max_grad_norm``, ``save_steps``, ...).

Each field says where it lives in the pipeline's own settings (its ``home``: the training loop's ``TrainerConfig``
or the EBFT step's ``EBFTStepConfig``) and takes its default, limits and description from there, so params.yaml and
the Python API cannot drift apart. ``to_settings`` and ``from_settings`` convert both ways (docs/api.md has the
table of names).

Batch sizes count completions, as in TRL's GRPO: ``generation_batch_size`` continuations are sampled per optimizer step
(all processes together; params.yaml's ``train.rollouts_per_step``), ``per_device_train_batch_size`` per forward
on one device (``num_generations`` per chunk, so a multiple of it). Gradient accumulation follows from the two.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from components.data.config import DataConfig
from components.engine.config import ForwardMode, SamplingConfig
from components.engine.layout import StridedLayout
from components.method.config import (
    EBFTStepConfig,
    FeatureConfig,
    KLEstimator,
    LayerChoice,
    LossConfig,
    RewardConfig,
    RLVRConfig,
    Whitening,
)
from components.settings import Settings
from components.training.config import OptimizerConfig, SchedulerConfig, TrainerConfig

# The trainer settings that only the pipeline's train stage reads (which methods, LoRA from params.yaml, the
# multi-process relaunch); in the API they are the trainer's arguments (peft_config) or accelerate's business.
STAGE_ONLY = ("methods", "lora", "num_processes", "accelerate_config", "launch")
BF16_PRECISION = {None: "auto", True: "bf16", False: "no"}  # EBFTConfig.bf16 -> train.mixed_precision
HOMES = {
    "trainer": TrainerConfig,
    "trainer.optimizer": OptimizerConfig,
    "trainer.scheduler": SchedulerConfig,
    "step": EBFTStepConfig,
    "step.sampling": SamplingConfig,
    "step.rewards": RewardConfig,
    "step.loss": LossConfig,
    "step.layout": StridedLayout,
    "step.features": FeatureConfig,
}


def home(path: str, default: Any = ..., description: str | None = None) -> Any:
    """A field declared where ``path`` (e.g. ``trainer.optimizer.lr``) lives: same default, limits, description."""
    parent, name = path.rsplit(".", 1)
    info: FieldInfo = copy.copy(HOMES[parent].model_fields[name])
    if default is not ...:
        info.default, info.default_factory = default, None
    info.description = description or info.description
    info.json_schema_extra = {"home": path}
    return info


class EBFTConfig(Settings):
    output_dir: str = Field("ebft-output", description="checkpoints (<output_dir>/checkpoints) and save_model()")
    run_name: str | None = Field(None, description="name of the MLflow run, when the trainer opens one")
    # the training loop
    max_steps: int = home("trainer.steps")
    learning_rate: float = home("trainer.optimizer.lr")
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    adam_epsilon: float = home("trainer.optimizer.eps")
    weight_decay: float = home("trainer.optimizer.weight_decay")
    lr_scheduler_type: Literal["constant_with_warmup", "cosine"] = home("trainer.scheduler.name")
    warmup_ratio: float = home("trainer.scheduler.warmup_ratio")
    generation_batch_size: int = home("trainer.rollouts_per_step")
    per_device_train_batch_size: int = Field(
        4, ge=1, description="completions per forward/backward on one device: chunks x num_generations"
    )
    max_grad_norm: float | None = home("trainer.grad_clip")
    gradient_checkpointing: bool = home("trainer.gradient_checkpointing")
    bf16: bool | None = Field(None, description="bf16 autocast; None: on GPU only")
    seed: int = home("trainer.seed")
    save_steps: int = home("trainer.checkpoint_every")
    save_total_limit: int = home("trainer.keep_checkpoints")
    resume: Literal["auto", "never"] = home("trainer.resume")
    log_completions_steps: int = home("trainer.log_samples_every")
    # sampling and the block geometry (docs/method.md §2)
    num_generations: int = home("step.sampling.n_samples")
    temperature: float = home("step.sampling.temperature")
    top_p: float = home("step.sampling.top_p")
    max_length: int = home("step.layout.seq_len", DataConfig.model_fields["seq_len"].default, "chunk length L")
    context_length: int = home("step.layout.context")
    stride: int = home("step.layout.stride")
    completion_length: int = home("step.layout.block_len")
    # rewards and loss (docs/method.md §4-5)
    alignment_coef: float = home("step.rewards.alignment_coef")
    diversity_coef: float = home("step.rewards.diversity_coef")
    whitening: Whitening = home("step.rewards.whitening")
    scale_rewards: Literal["none", "group"] = home("step.rewards.advantage_norm")
    rl_coef: float = home("step.loss.rl_coef")
    ce_coef: float = home("step.loss.ce_coef")
    beta: float = home("step.loss.kl_coef")
    kl_estimator: KLEstimator = home("step.loss.kl_estimator")
    completion_only_loss: bool = home("step.qa_masking")
    document_masking: bool = home("step.document_masking")
    forward_mode: ForwardMode = home("step.forward_mode")
    logit_chunk_size: int = home("step.logit_chunk_size")
    # the frozen feature network's read-out (docs/method.md §3)
    feature_layers: LayerChoice | list[int] = home("step.features.layers")
    feature_token_norm: Literal["joint", "per_layer", "none"] = home("step.features.token_norm")
    feature_pooling: Literal["last_token", "mean", "concat", "token"] = home("step.features.pooling")
    rlvr: RLVRConfig = home("step.rlvr")
    # in-memory datasets only (the pipeline's prepare stage has data.chat_template)
    chat_template: bool = Field(
        False, description="string prompt/completion rows as a user turn and an assistant answer (chat template)"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, values: Any) -> Any:
        unknown = sorted(set(values) - set(cls.model_fields)) if isinstance(values, dict) else []
        if unknown:
            hints = [f"{name!r}: {TRL_HINTS.get(name) or _nearest(name, cls.model_fields)}" for name in unknown]
            raise ValueError("EBFTConfig has no field " + "; ".join(hints))
        return values

    @model_validator(mode="after")
    def _check(self) -> EBFTConfig:
        n = self.num_generations
        for name in ("per_device_train_batch_size", "generation_batch_size"):
            if getattr(self, name) % n:
                raise ValueError(
                    f"{name}={getattr(self, name)} must be a multiple of num_generations={n}: "
                    "EBFT samples num_generations continuations of every chunk"
                )
        try:
            self.to_settings()
        except ValidationError as err:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
            names = "max_length = L, context_length = C, stride = s, completion_length = G, num_generations = n"
            raise ValueError(f"{problems} (in EBFTConfig: {names})") from None
        return self

    @property
    def mixed_precision(self) -> str:
        return BF16_PRECISION[self.bf16]

    def to_settings(self) -> tuple[TrainerConfig, EBFTStepConfig]:
        """The training loop's and the EBFT step's settings (stage-only trainer settings at their defaults)."""
        tree: dict[str, dict] = {"trainer": {}, "step": {}}
        for name, path in field_homes().items():
            _put(tree, path, getattr(self, name))
        trainer, step = tree["trainer"], tree["step"]
        trainer["optimizer"]["betas"] = (self.adam_beta1, self.adam_beta2)
        trainer["micro_batch_chunks"] = self.per_device_train_batch_size // self.num_generations
        trainer["mixed_precision"] = self.mixed_precision
        step["layout"] = StridedLayout(**step["layout"])
        return TrainerConfig(**trainer), EBFTStepConfig(**step)

    @classmethod
    def from_settings(cls, trainer: TrainerConfig, step: EBFTStepConfig, **extra: Any) -> EBFTConfig:
        """The config that gives back these settings (the pipeline's train stage builds its trainer with it)."""
        tree = {"trainer": trainer.model_dump(), "step": step.model_dump()}
        values = {name: _get(tree, path) for name, path in field_homes().items()}
        values["adam_beta1"], values["adam_beta2"] = trainer.optimizer.betas
        values["per_device_train_batch_size"] = trainer.micro_batch_chunks * step.sampling.n_samples
        values["bf16"] = {precision: bf16 for bf16, precision in BF16_PRECISION.items()}[trainer.mixed_precision]
        return cls(**values, **extra)


# TRL names that mean something else here, or nothing: what to set instead.
TRL_HINTS = {
    "gradient_accumulation_steps": "set generation_batch_size (completions per optimizer step, all devices) and "
    "per_device_train_batch_size; accumulation follows from them",
    "num_train_epochs": "set max_steps (an epoch is len(chunks) / (generation_batch_size / num_generations) steps)",
    "max_completion_length": "every continuation has exactly completion_length (G) tokens",
    "max_prompt_length": "prompts are the chunk's prefixes; set max_length (the chunk length L)",
    "logging_steps": "metrics are logged at every step",
    "report_to": "metrics go to the active MLflow run (mlflow.start_run()), or to a run the trainer opens",
}


def _nearest(name: str, fields: dict) -> str:
    close = difflib.get_close_matches(name, list(fields), n=3)
    return f"did you mean {' or '.join(close)}?" if close else "see docs/api.md for the fields"


def field_homes() -> dict[str, str]:
    """EBFTConfig field -> where it lives in (TrainerConfig, EBFTStepConfig), for the fields that map one to one."""
    return {
        name: info.json_schema_extra["home"]
        for name, info in EBFTConfig.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and "home" in info.json_schema_extra
    }


def _put(tree: dict, path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[name] = value.model_dump() if isinstance(value, Settings) else value


def _get(tree: dict, path: str) -> Any:
    for part in path.split("."):
        tree = tree[part]
    return tree
