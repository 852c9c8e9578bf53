"""Reference strided sampler: the algorithm of the paper's code, without a KV cache.

Every one of the G steps re-runs the whole (L + NB*G)-token sequence of every sample with the dense mask
(not-yet-sampled positions hold placeholders that nothing earlier attends to). It draws random numbers in exactly
the same order as the cached sampler, so both give identical tokens for the same seed. Used by tests and by
benchmarks/sampling.py as the baseline; training uses components/engine/sampler.py.
"""

from __future__ import annotations

import torch

from components.engine.causal_lm import compute_dtype, hidden_states, logit_head
from components.engine.config import SamplingConfig
from components.engine.layout import StridedLayout
from components.engine.masks import StridedMasks, build_strided_masks
from components.engine.sampler import StridedSamples, eval_mode
from components.engine.token_sampling import Generators, sample_next_tokens


@torch.no_grad()
def sample_strided_dense(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    layout: StridedLayout,
    config: SamplingConfig,
    generator: Generators = None,
    masks: StridedMasks | None = None,
) -> StridedSamples:
    """Same contract as components.engine.sampler.sample_strided, computed by full recomputation."""
    B, L = input_ids.shape
    n, NB, G = config.n_samples, layout.num_blocks, layout.block_len
    if masks is None:
        masks = build_strided_masks(layout, dtype=compute_dtype(model), device=input_ids.device)
    mask, positions = masks.per_sample(n).dense()
    sequence = torch.cat([input_ids.repeat_interleave(n, dim=0), input_ids.new_zeros(B * n, layout.gen_len)], dim=1)
    head = logit_head(model)
    context_rows = layout.anchors(input_ids.device) - 1
    logprobs = torch.empty(B * n, G, NB, dtype=torch.float32, device=input_ids.device)
    with eval_mode(model):
        for g in range(G):
            h = hidden_states(model, sequence, mask, positions)[-1]
            rows = context_rows if g == 0 else L + (g - 1) * NB + torch.arange(NB, device=h.device)
            logits = head(h[:, rows]).float().reshape(B * n * NB, -1)
            tok, lp = sample_next_tokens(logits, config.temperature, config.top_p, generator)
            sequence[:, L + g * NB : L + (g + 1) * NB] = tok.view(B * n, NB)
            logprobs[:, g] = lp.view(B * n, NB)
    tokens = sequence[:, L:].view(B * n, G, NB)

    def block_major(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(B, n, G, NB).transpose(2, 3).contiguous()

    return StridedSamples(tokens=block_major(tokens), logprobs=block_major(logprobs))
