"""Settings of the training loop (optimizer, schedule, batch geometry, checkpoints, LoRA, devices).

They live in params.yaml under ``train``, next to the EBFT step's options (components/method/config.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.settings import Settings

Method = Literal["ebft", "sft", "rlvr"]
# Settings that change how a run is checkpointed or observed, not what it computes.
RESUME_ONLY = ("resume", "checkpoint_every", "keep_checkpoints", "log_samples_every", "launch")


class OptimizerConfig(Settings):
    lr: float = Field(2e-5, gt=0, description="AdamW learning rate (paper: 1e-6 at 1.5B scale)")
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(0.0, ge=0)
    eps: float = Field(1e-8, gt=0)


class SchedulerConfig(Settings):
    name: Literal["constant_with_warmup", "cosine"] = "constant_with_warmup"
    warmup_ratio: float = Field(0.03, ge=0, le=1, description="fraction of steps with a linear warm-up")


class LoraSettings(Settings):
    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="module names to adapt, or 'all-linear' (peft: every linear layer but the output head)",
    )
    save_adapter: bool = Field(
        False, description="also save the adapter alone in models/trained/<method>/adapter (peft's format)"
    )


class LaunchSettings(Settings):
    """Where the processes of a multi-process run meet (README, "More processes, GPUs and machines"). On each
    machine the environment overrides them, so one params.yaml serves every node: EBFT_NUM_MACHINES,
    EBFT_MAIN_PROCESS_IP, EBFT_MAIN_PROCESS_PORT, and EBFT_MACHINE_RANK (0 on the machine at main_process_ip)."""

    num_machines: int | None = Field(
        None,
        ge=1,
        description="machines taking part (train.num_processes counts all their processes); null: the "
        "accelerate config's, else 1",
    )
    main_process_ip: str | None = Field(None, description="address of the rank-0 machine (several machines)")
    main_process_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="rendezvous port; null: the accelerate config's, else a free local port (one machine) or 29500",
    )


class TrainerConfig(Settings):
    methods: list[Method] = Field(
        default_factory=lambda: ["ebft", "sft"],
        min_length=1,
        description="what a run trains: 'ebft', the 'sft' baseline, or both",
    )
    steps: int = Field(6, ge=1, description="optimizer steps (one rollout batch each)")
    rollouts_per_step: int = Field(16, ge=1, description="sampled sequences per step, all processes together")
    micro_batch_chunks: int = Field(1, ge=1, description="chunks per forward/backward on one process")
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; null = no clipping")
    gradient_checkpointing: bool = Field(
        False, description="activation checkpointing of the decoder layers (works with every forward_mode)"
    )
    lora: LoraSettings = LoraSettings()
    mixed_precision: Literal["auto", "no", "bf16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    seed: int = Field(43, ge=0, lt=2**32, description="random seed of the run (numpy takes seeds below 2**32)")
    checkpoint_every: int = Field(0, ge=0, description="steps between checkpoints (0: only at the end)")
    keep_checkpoints: int = Field(1, ge=1)
    resume: Literal["auto", "never"] = Field("auto", description="auto: continue from a compatible checkpoint")
    log_samples_every: int = Field(3, ge=0, description="steps between rollout-sample tables in MLflow (0: never)")
    num_processes: int = Field(1, ge=1, description="processes (GPUs, or CPU ranks) for data-parallel training")
    accelerate_config: str | None = Field(None, description="accelerate config file for multi-process runs")
    launch: LaunchSettings = LaunchSettings()

    def chunks_per_step(self, n_samples: int) -> int:
        """Chunks in one optimizer step (all processes): the EBFT rollouts over n samples; SFT uses the same chunks."""
        return max(1, self.rollouts_per_step // n_samples)
