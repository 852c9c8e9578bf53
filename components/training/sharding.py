"""What training needs to know about sharded (FSDP1 / FSDP2) models: full weights to save, and the gradient norm.

FSDP2 (``fully_shard``) turns every parameter into a DTensor holding this process's shard; FSDP1 flattens them into
one buffer per wrapped unit. Saving a model, merging LoRA into it, or logging its gradient norm needs the whole
tensors, gathered here (docs/distributed.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch


def is_fsdp2(model: torch.nn.Module) -> bool:
    """``fully_shard`` was applied to ``model`` or one of its modules."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def is_fsdp1(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FullyShardedDataParallel

    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules())


@contextmanager
def gathered(policy: torch.nn.Module, lm: torch.nn.Module) -> Iterator[torch.nn.Module | None]:
    """``lm`` (the language model inside the possibly sharded ``policy``) with whole weights on the main process.
    Every process must enter this together: gathering is a collective. On the other processes it gives ``lm`` as it
    is under FSDP1 and None under FSDP2 (their shards are not a model to save)."""
    if is_fsdp2(policy):
        yield fsdp2_full_copy(lm)
        return
    if is_fsdp1(policy):
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(policy, writeback=False, rank0_only=True, offload_to_cpu=True):
            yield lm
        return
    yield lm


def fsdp2_full_copy(lm: torch.nn.Module) -> torch.nn.Module | None:
    """An unsharded CPU copy of an FSDP2-sharded HF model (a peft model keeps its adapters) on rank 0, None elsewhere.
    FSDP2's ``state_dict`` always gives shards, even while a module is unsharded, so the whole tensors are gathered
    into a state dict and loaded into a model built without weights."""
    import torch.distributed as dist
    from accelerate import init_empty_weights
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(lm, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() != 0:
        return None
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    with init_empty_weights(include_buffers=False):  # buffers (rotary tables) are not in the state dict: real ones
        copy = type(base)._from_config(base.config, dtype=next(iter(state.values())).dtype)
        if hasattr(lm, "peft_config"):
            from peft import get_peft_model

            copy = get_peft_model(copy, lm.peft_config[lm.active_adapter])
    copy.load_state_dict(state, strict=True, assign=True)
    inner = copy.get_base_model() if hasattr(copy, "get_base_model") else copy
    inner.tie_weights()
    inner.generation_config = base.generation_config
    return copy


def total_grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """L2 norm of all gradients together, over every process's shards when they are DTensors (FSDP2)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norm = torch.nn.utils.get_total_norm(grads)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm
