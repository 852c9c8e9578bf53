"""Log-probabilities of chosen tokens from final hidden states, with bounded memory.

Full-vocabulary fp32 logits for every position (e.g. 4 samples x 2,040 positions x 49,152 vocab = 1.6 GB) are never
held at once: positions are processed in chunks, and under autograd each chunk is checkpointed, so backward keeps
only the chunk's hidden states and recomputes its logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint


def _chunk_logprobs(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    want_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden).float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)
    if want_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    else:
        entropy = logp.new_zeros(())
    return logp, entropy


def token_logprobs(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    *,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(head(hidden) / T)[target] for hidden (..., H) and targets (...).

    Returns fp32 log-probs of shape (...) and, if asked, the (detached) entropy of the same distribution.
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} do not match")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    shape = targets.shape
    flat_h = hidden.reshape(-1, hidden.shape[-1])
    flat_t = targets.reshape(-1)
    use_checkpoint = torch.is_grad_enabled() and flat_h.requires_grad
    logps, entropies = [], []
    for start in range(0, flat_t.shape[0], chunk_size):
        args = (head, flat_h[start : start + chunk_size], flat_t[start : start + chunk_size], temperature)
        if use_checkpoint:
            logp, entropy = checkpoint(_chunk_logprobs, *args, with_entropy, use_reentrant=False)
        else:
            logp, entropy = _chunk_logprobs(*args, with_entropy)
        logps.append(logp)
        entropies.append(entropy)
    logp = torch.cat(logps).reshape(shape) if logps else flat_h.new_zeros(shape, dtype=torch.float32)
    if not with_entropy:
        return logp, None
    entropy = torch.cat(entropies).reshape(shape) if entropies else logp.detach().clone()
    return logp, entropy
