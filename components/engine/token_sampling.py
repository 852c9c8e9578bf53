"""Drawing the next token from logits: temperature, nucleus (top-p), a seeded generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def uniform_draws(rows: int, generator: Generators, device: torch.device) -> torch.Tensor:
    """(rows, 1) uniforms. A sequence of k generators draws for k equal consecutive groups of rows (one group per
    chunk), so a chunk's samples do not depend on which other chunks share its batch."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(rows, 1, generator=generator, device=device)
    if rows % len(generator):
        raise ValueError(f"{rows} rows cannot be split evenly over {len(generator)} generators")
    per = rows // len(generator)
    return torch.cat([torch.rand(per, 1, generator=g, device=device) for g in generator])


def sample_next_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: Generators
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row of ``logits`` (N, V).

    Returns the tokens (N,) and their log-probabilities (N,) under the temperature-scaled *full* distribution
    (top-p only restricts which tokens may be drawn; the policy gradient uses the untruncated policy).
    Exactly one uniform number per row is drawn from ``generator`` (inverse-CDF sampling), so equal logits and an
    equally seeded generator give equal tokens. ``torch.multinomial`` would draw one exponential variate per
    vocabulary entry instead: 12x slower at a 49k vocabulary.
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    candidates, order = probs, None
    if top_p < 1.0:
        candidates, order = probs.sort(dim=-1, descending=True)
        mass_before = candidates.cumsum(dim=-1) - candidates
        candidates = candidates.masked_fill(mass_before >= top_p, 0.0)
    cdf = candidates.cumsum(dim=-1)
    u = uniform_draws(cdf.shape[0], generator, cdf.device) * cdf[:, -1:]
    tokens = torch.searchsorted(cdf, u, right=True).clamp_max(cdf.shape[1] - 1)
    if order is not None:
        tokens = order.gather(-1, tokens)
    tokens = tokens.squeeze(-1)
    return tokens, probs.gather(-1, tokens[:, None]).squeeze(-1).log()
