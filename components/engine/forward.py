"""One forward over chunk + generated tokens: the policy's log-probs (training) and any network's hidden states.

Three interchangeable modes give identical results (tests/engine/test_oracle.py):
- ``cached``: the chunk runs once per chunk (B rows) into a KV cache, which is repeated for the n samples; the
  generated segment (B*n rows, NB*G tokens) then attends to it. Gradients flow through the cache into the chunk's
  computation. Cost per chunk: L + n*NB*G tokens. The cache survives activation checkpointing (prefix_cache.py).
- ``flex``: ``cached`` with FlexAttention block masks instead of dense additive ones (flex_attention.py).
- ``dense``: the reference layout, one (L + NB*G)-token sequence per sample with a dense mask. Cost per chunk:
  n*(L + NB*G) tokens.

Ground-truth log-probs (CE) come from the chunk rows at temperature 1; they never see generated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from components.engine.causal_lm import HiddenLayers, hidden_states, lm_config, logit_head
from components.engine.config import ForwardMode
from components.engine.flex_attention import strided_block_masks, use_flex_attention
from components.engine.masks import StridedMasks
from components.engine.prefix_cache import PrefixCache, replay_safe
from components.engine.token_logprobs import token_logprobs

Hidden = tuple[torch.Tensor | None, ...]


def prompt_hidden_states(
    model: torch.nn.Module, input_ids: torch.Tensor, masks: StridedMasks, layers: HiddenLayers = (-1,)
) -> Hidden:
    """Plain causal (per-document if masked) forward over the chunks alone: (B, L, H) per selected layer."""
    return hidden_states(model, input_ids, masks.prompt_mask, masks.prompt_positions, layers=layers)


def strided_hidden_states(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    gen_tokens: torch.Tensor,
    masks: StridedMasks,
    *,
    layers: HiddenLayers = (-1,),
    mode: ForwardMode = "cached",
) -> tuple[Hidden, Hidden]:
    """Hidden states of the chunks (B, L, H) and of the generated segments (B*n, NB*G, H), per selected layer.

    ``gen_tokens`` is (B*n, NB*G) step-major (StridedSamples.step_major); n is inferred from its rows.
    """
    B, L = input_ids.shape
    n = gen_tokens.shape[0] // B
    if gen_tokens.shape != (B * n, masks.layout.gen_len) or n < 1:
        raise ValueError(
            f"gen_tokens must be (B*n, NB*G) = ({B}*n, {masks.layout.gen_len}), got {tuple(gen_tokens.shape)}"
        )
    per_sample = masks.per_sample(n)
    if mode in ("cached", "flex"):
        prompt_mask, gen_mask = masks.prompt_mask, per_sample.gen_mask
        if mode == "flex":
            use_flex_attention(model)
            prompt_mask, gen_mask = strided_block_masks(masks, B, n)
        cache = PrefixCache(lm_config(model))  # safe to replay: works under activation checkpointing
        # use_cache=False: the layers fill the cache anyway; asking for it back would only make HF warn (and refuse)
        # under checkpointing
        with replay_safe(model):
            prompt = hidden_states(model, input_ids, prompt_mask, masks.prompt_positions, cache=cache,
                                   layers=layers, use_cache=False)  # fmt: skip
            gen = hidden_states(model, gen_tokens, gen_mask, per_sample.gen_positions, cache=cache.for_samples(n),
                                layers=layers, use_cache=False)  # fmt: skip
        return prompt, gen
    if mode == "dense":
        mask, positions = per_sample.dense()
        sequence = torch.cat([input_ids.repeat_interleave(n, dim=0), gen_tokens], dim=1)
        full = hidden_states(model, sequence, mask, positions, layers=layers)
        prompt = tuple(None if h is None else h[::n, :L] for h in full)
        gen = tuple(None if h is None else h[:, L:] for h in full)
        return prompt, gen
    raise ValueError(f"mode={mode!r}; allowed: 'cached', 'flex', 'dense'")


@dataclass(frozen=True)
class StridedLogprobs:
    gen_logprobs: torch.Tensor  # (B*n, NB*G) step-major: log p_T(generated token | its prefix and block)
    gt_logprobs: torch.Tensor  # (B, L-1): teacher-forced log p_1(x[t+1] | x[:t+1])
    gen_entropy: torch.Tensor | None  # (B*n, NB*G), detached, entropy of p_T at each generated token


def strided_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    gen_tokens: torch.Tensor,
    masks: StridedMasks,
    *,
    temperature: float,
    mode: ForwardMode = "cached",
    chunk_size: int = 1024,
    with_entropy: bool = False,
) -> StridedLogprobs:
    """Log-probs of the generated tokens (temperature T) and of the ground truth (T = 1) from one forward."""
    prompt_states, gen_states = strided_hidden_states(model, input_ids, gen_tokens, masks, mode=mode)
    prompt_last = prompt_states[-1]
    gen_logp, entropy = generated_logprobs(
        model, gen_tokens, prompt_last, gen_states[-1], masks, temperature, chunk_size, with_entropy
    )
    gt_logp, _ = token_logprobs(prompt_last[:, :-1], input_ids[:, 1:], logit_head(model), chunk_size=chunk_size)
    return StridedLogprobs(gen_logprobs=gen_logp, gt_logprobs=gt_logp, gen_entropy=entropy)


def generated_logprobs(
    model: torch.nn.Module,
    gen_tokens: torch.Tensor,
    prompt_last: torch.Tensor,
    gen_last: torch.Tensor,
    masks: StridedMasks,
    temperature: float,
    chunk_size: int = 1024,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (B*n, NB*G) of the generated tokens from final hidden states of the chunk (B, L, H) and of the
    generated segment (B*n, NB*G, H). Step 0 of block k is predicted at chunk position a_k - 1; step g > 0 by the
    block's previous token."""
    layout = masks.layout
    n = gen_tokens.shape[0] // prompt_last.shape[0]
    at_context = prompt_last[:, layout.anchors(prompt_last.device) - 1].repeat_interleave(n, dim=0)
    predictors = torch.cat([at_context, gen_last[:, : layout.gen_len - layout.num_blocks]], dim=1)
    return token_logprobs(
        predictors,
        gen_tokens,
        logit_head(model),
        temperature=temperature,
        chunk_size=chunk_size,
        with_entropy=with_entropy,
    )


def teacher_forced_logprobs(
    model: torch.nn.Module, input_ids: torch.Tensor, masks: StridedMasks, *, chunk_size: int = 1024
) -> torch.Tensor:
    """(B, L-1) log p(x[t+1] | x[:t+1]) from a plain causal (per-document if masked) forward: SFT and validation CE."""
    (*_, hidden) = prompt_hidden_states(model, input_ids, masks)
    logp, _ = token_logprobs(hidden[:, :-1], input_ids[:, 1:], logit_head(model), chunk_size=chunk_size)
    return logp
