"""FlexAttention for the strided training forward (``forward_mode: flex``).

The cached forward's masks are block-structured: a generated token sees its context prefix and its own block's
earlier tokens, nothing else. SDPA takes them as a dense additive mask, which rules out the flash kernels; FlexAttention
takes a ``BlockMask`` instead and skips the tiles where nothing is allowed. The block masks here are made from the
same boolean patterns as the additive masks (masks.py), so both paths compute the same attention (the oracle tests
check it, tests/engine/test_oracle.py).

A model switched to flex keeps SDPA for every call that does not pass a ``BlockMask`` (sampling, evaluation, padded
prompts): the registered attention function dispatches on the mask's type. The switch stays on the model because
activation checkpointing replays layers during backward, after the forward call has returned. The name is not
saved with the model (HF does not serialise it). On CUDA the attention is compiled once (``torch.compile``); on CPU it
runs FlexAttention's unfused reference, which is only for tests.
"""

from __future__ import annotations

import functools

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from components.engine.causal_lm import lm_config
from components.engine.masks import StridedMasks

NAME = "ebft_strided"


def strided_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    if not isinstance(attention_mask, BlockMask):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    if dropout > 0:
        raise ValueError("forward_mode flex does not support attention dropout; set the model's attention_dropout to 0")
    if not query.is_cuda and query.requires_grad:
        raise ValueError(
            "forward_mode 'flex': FlexAttention has no backward on CPU (torch 2.13); train with 'cached' on CPU, "
            "flex is for CUDA"
        )
    attend = _compiled_flex() if query.is_cuda else flex_attention
    out = attend(query, key, value, block_mask=attention_mask, scale=scaling, enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def _compiled_flex():
    return torch.compile(flex_attention)


AttentionInterface.register(NAME, strided_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # padded 2D masks are built as for SDPA


def use_flex_attention(model: torch.nn.Module) -> None:
    """Switch ``model`` (an SDPA model) to the dispatching attention; idempotent."""
    config = lm_config(model)
    if config._attn_implementation == NAME:
        return
    if config._attn_implementation != "sdpa":
        raise ValueError(
            f"forward_mode flex needs a model loaded with attn_implementation='sdpa', not "
            f"{config._attn_implementation!r}"
        )
    if getattr(config, "attn_logit_softcapping", None):
        raise ValueError("forward_mode flex does not support attention logit soft-capping (Gemma 2); use 'cached'")
    config._attn_implementation = NAME


def block_mask(additive: torch.Tensor, rows: int):
    """A BlockMask allowing exactly where the additive mask (B|1, 1, Q, KV) is 0, for ``rows`` batch rows (a mask
    shared by every row, dim 0 == 1, gives one mask broadcast over the batch)."""
    allowed = additive[:, 0] == 0
    q_len, kv_len = allowed.shape[-2:]
    if allowed.shape[0] == 1:
        shared = allowed[0]

        def mask_mod(b, h, q, kv):
            return shared[q, kv]

        return create_block_mask(mask_mod, None, None, q_len, kv_len, device=allowed.device)

    def per_row(b, h, q, kv):
        return allowed[b, q, kv]

    return create_block_mask(per_row, rows, None, q_len, kv_len, device=allowed.device)


def strided_block_masks(masks: StridedMasks, batch: int, n: int):
    """The cached forward's two masks as BlockMasks: the chunks' (``batch`` rows) and the generated segments'
    (``batch * n`` rows, keys = chunk then generated)."""
    per_sample = masks.per_sample(n)
    return block_mask(masks.prompt_mask, batch), block_mask(per_sample.gen_mask, batch * n)
