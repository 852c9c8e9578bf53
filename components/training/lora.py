"""Optional LoRA adapters through peft: only the adapters train; they are merged back before the model is saved (and,
with ``save_adapter``, also saved alone, to load over the base model with ``peft.PeftModel.from_pretrained``)."""

from __future__ import annotations

from pathlib import Path

import torch

from components.training.config import LoraSettings


def lora_config(settings: LoraSettings):
    """params.yaml's ``train.lora`` as a peft ``LoraConfig`` (what ``EBFTTrainer(peft_config=...)`` takes)."""
    from peft import LoraConfig

    targets = settings.target_modules
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets if targets == "all-linear" else list(targets),
        task_type="CAUSAL_LM",
    )


def add_lora(model: torch.nn.Module, config) -> torch.nn.Module:
    """``model`` with the adapters of a peft ``LoraConfig``; named target modules the model lacks are refused."""
    from peft import get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = config.target_modules
    missing = [] if isinstance(targets, str) else sorted(m for m in targets if m not in present)
    if missing:
        raise ValueError(
            f"LoRA target_modules {missing} are not modules of {type(model).__name__}; "
            f"linear layers it has include: {sorted(n for n in present if 'proj' in n)}"
        )
    return get_peft_model(model, config)


def merged(model: torch.nn.Module, adapter_dir: Path | None = None) -> torch.nn.Module:
    """A plain model: LoRA adapters merged into the weights (a model without adapters as is). ``adapter_dir``: save
    the adapter alone there first (merging consumes it)."""
    if not hasattr(model, "merge_and_unload"):
        return model
    if adapter_dir is not None:
        model.save_pretrained(adapter_dir)
    return model.merge_and_unload()
