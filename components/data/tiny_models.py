"""Tiny randomly initialised causal LMs for tests and smoke runs (no download, builds in milliseconds)."""

from __future__ import annotations

from typing import Literal

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

Architecture = Literal["llama", "qwen2"]


def tiny_causal_lm(
    architecture: Architecture = "llama",
    *,
    vocab_size: int = 101,
    hidden_size: int = 32,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
) -> PreTrainedModel:
    """A small model of a real architecture (grouped-query attention, RoPE), in eval mode."""
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=4096,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=None,
        tie_word_embeddings=architecture == "qwen2",
    )
    configs = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if architecture not in configs:
        raise ValueError(f"architecture={architecture!r}; allowed: {sorted(configs)}")
    config_cls, model_cls = configs[architecture]
    config = config_cls(**common)
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    # Random init keeps weights near zero; a larger std gives peaked, token-dependent distributions, which make
    # tests sensitive to any mistake in masks or positions.
    config.initializer_range = 0.2
    model = model_cls(config).to(dtype)
    return model.eval()
