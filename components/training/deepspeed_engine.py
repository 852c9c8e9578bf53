"""Training under DeepSpeed ZeRO (infra/accelerate/deepspeed_zero2.yaml), the paper's distribution.

accelerate hands the policy to a DeepSpeed engine that owns backward, clipping and the optimizer step. The training
loop accumulates a step's micro-batches itself (on-policy: each is rolled out just before its backward), so the
engine is told the batch shape (one micro-batch of ``micro_batch_chunks`` chunks per process, no accumulation of its
own), where the step's last micro-batch is, and the clipping threshold (docs/distributed.md).
"""

from __future__ import annotations

import torch
from accelerate import Accelerator, DistributedType


def uses_deepspeed(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.DEEPSPEED


def configure(accelerator: Accelerator, micro_batch_chunks: int, grad_clip: float | None) -> None:
    """Fill the engine's batch and clipping settings from the training config (before ``prepare``)."""
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    config["train_micro_batch_size_per_gpu"] = micro_batch_chunks
    config["gradient_accumulation_steps"] = 1  # the loop divides each micro-batch's loss itself
    config["train_batch_size"] = micro_batch_chunks * accelerator.num_processes
    config["gradient_clipping"] = grad_clip or 0.0


def backward(engine, loss: torch.Tensor, last_micro_batch: bool) -> None:
    """Accumulate this micro-batch's gradients; on the step's last one the engine reduces them, clips and steps."""
    engine.set_gradient_accumulation_boundary(last_micro_batch)
    engine.backward(loss)
    if last_micro_batch:
        engine.step()


def grad_norm(engine) -> float:
    """The gradient norm of the engine's last step (before clipping)."""
    norm = engine.get_global_grad_norm()
    return float(norm) if norm is not None else 0.0
