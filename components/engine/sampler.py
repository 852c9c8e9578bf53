"""KV-cached strided block-parallel sampler (docs/method.md §2).

Per batch: one prefill of each chunk (B rows, L tokens), shared by its n samples through the KV cache; then every
sampling step feeds the NB newest tokens of each of the B*n sequences, attending to the cached chunk and to their own
block's earlier tokens only. G tokens per block cost 1 prefill + (G-1) small decode calls, instead of G full
recomputes of the (L + NB*G)-token sequence (components/engine/dense_sampler.py keeps that algorithm for tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from components.engine.causal_lm import compute_dtype, hidden_states, logit_head, new_cache
from components.engine.config import SamplingConfig
from components.engine.layout import StridedLayout
from components.engine.masks import StridedMasks, build_strided_masks
from components.engine.token_sampling import Generators, sample_next_tokens


@dataclass(frozen=True)
class StridedSamples:
    """Sampled continuations of every block, block-major.

    tokens:   (B, n, NB, G) int64, ``tokens[b, i, k, g]`` = token g of sample i of block k of chunk b.
    logprobs: (B, n, NB, G) float32, their log-probabilities under the sampling temperature.
    """

    tokens: torch.Tensor
    logprobs: torch.Tensor

    @property
    def n_samples(self) -> int:
        return self.tokens.shape[1]

    def step_major(self, layout: StridedLayout) -> torch.Tensor:
        """Tokens as the (B*n, NB*G) generated segment, step-major (the model's input order)."""
        b, n = self.tokens.shape[:2]
        return layout.to_step_major(self.tokens).reshape(b * n, layout.gen_len)


class eval_mode:
    """Temporarily put a model in eval mode (no dropout while sampling), restoring its mode afterwards."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self) -> torch.nn.Module:
        self.was_training = self.model.training
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


@torch.no_grad()
def sample_strided(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    layout: StridedLayout,
    config: SamplingConfig,
    generator: Generators = None,
    masks: StridedMasks | None = None,
) -> StridedSamples:
    """Sample ``config.n_samples`` continuations of G tokens for every block of every chunk in ``input_ids`` (B, L).

    ``masks`` (from build_strided_masks, in the model's dtype) carries document/QA masking; plain causal if None.
    ``generator`` is one generator, or one per chunk (then a chunk's samples do not depend on its batch-mates).
    """
    B, L = input_ids.shape
    if layout.seq_len != L:
        raise ValueError(f"chunks have {L} tokens but the layout expects seq_len={layout.seq_len}")
    n, NB, G = config.n_samples, layout.num_blocks, layout.block_len
    if masks is None:
        masks = build_strided_masks(layout, dtype=compute_dtype(model), device=input_ids.device)
    head = logit_head(model)

    with eval_mode(model):
        cache = new_cache(model)
        h = hidden_states(model, input_ids, masks.prompt_mask, masks.prompt_positions, cache=cache)[-1]
        # Step 0 of block k reads the chunk's logits at a_k - 1; computed once per chunk, shared by its samples.
        logits = head(h[:, layout.anchors(h.device) - 1]).float().repeat_interleave(n, dim=0)
        cache.batch_repeat_interleave(n)
        sample_masks = masks.per_sample(n)

        tokens = torch.empty(B * n, G, NB, dtype=torch.long, device=input_ids.device)
        logprobs = torch.empty(B * n, G, NB, dtype=torch.float32, device=input_ids.device)
        for g in range(G):
            tok, lp = sample_next_tokens(logits.reshape(B * n * NB, -1), config.temperature, config.top_p, generator)
            tokens[:, g], logprobs[:, g] = tok.view(B * n, NB), lp.view(B * n, NB)
            if g + 1 < G:
                mask, positions = sample_masks.decode_step(g)
                h = hidden_states(model, tokens[:, g], mask, positions, cache=cache)[-1]
                logits = head(h).float()

    def block_major(t: torch.Tensor) -> torch.Tensor:
        return t.view(B, n, G, NB).transpose(2, 3).contiguous()

    return StridedSamples(tokens=block_major(tokens), logprobs=block_major(logprobs))
