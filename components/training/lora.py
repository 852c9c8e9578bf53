"""Optional LoRA adapters through peft: only the adapters train; they are merged back before the model is saved."""

from __future__ import annotations

import torch

from components.training.config import LoraSettings


def add_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in settings.target_modules if m not in present]
    if missing:
        raise ValueError(
            f"train.lora.target_modules {missing} are not modules of {type(model).__name__}; "
            f"linear layers it has include: {sorted(n for n in present if 'proj' in n)}"
        )
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """A plain model: LoRA adapters merged into the weights (a model without adapters as is)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
