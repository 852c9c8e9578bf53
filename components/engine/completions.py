"""Full completions of prompts, for methods that score a whole answer (the RLVR baseline): seeded, KV-cached sampling
of n continuations per prompt until EOS, and the plain causal log-probs of the sampled tokens.

Prompts are left-padded so every row's next token sits in the last column; positions count real tokens only, so a
padded row computes exactly what it would alone (tests/engine/test_completions.py checks this against unpadded
forwards).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from components.engine.causal_lm import hidden_states, logit_head
from components.engine.token_logprobs import token_logprobs
from components.engine.token_sampling import Generators, sample_next_tokens


@dataclass(frozen=True)
class Completions:
    """Rows = prompts x n, prompt-major. ``tokens`` (R, P + T): left-padded prompt, then the completion, right-padded
    after its EOS; ``attention_mask`` marks real tokens; ``completion_mask`` (R, P + T - 1) marks the targets that are
    completion tokens (EOS included)."""

    tokens: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    prompt_width: int

    def completion_ids(self) -> list[list[int]]:
        """Each row's completion tokens (its EOS included, where it drew one)."""
        return [tokens[1:][keep].tolist() for tokens, keep in zip(self.tokens, self.completion_mask, strict=True)]


def left_padded(prompts: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long, device=device)
        mask[i, width - len(p) :] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp_min(0)


@torch.no_grad()
def sample_completions(
    model: torch.nn.Module,
    prompts: list[list[int]],
    n: int,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: Generators = None,
) -> Completions:
    """``n`` completions of every prompt; ``generator``: one per prompt (its n rows draw from it), or one, or None."""
    device = next(model.parameters()).device
    ids, mask = left_padded([p for p in prompts for _ in range(n)], pad_id, device)
    rows, width = ids.shape
    out = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=True, logits_to_keep=1)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    new_tokens = []
    for _ in range(max_new_tokens):
        token, _ = sample_next_tokens(out.logits[:, -1], temperature, top_p, generator)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        new_tokens.append(token)
        mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
        done = done | (token == eos_id)
        if bool(done.all()):
            break
        positions = _positions(mask)[:, -1:]
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                    past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)  # fmt: skip
    completion = torch.stack(new_tokens, dim=1) if new_tokens else ids.new_zeros((rows, 0))
    tokens = torch.cat([ids, completion], dim=1)
    target_is_completion = torch.zeros_like(tokens[:, 1:], dtype=torch.bool)
    target_is_completion[:, width - 1 :] = mask[:, width:].bool()
    return Completions(tokens, mask, target_is_completion, width)


def sequence_logprobs(
    model: torch.nn.Module, tokens: torch.Tensor, attention_mask: torch.Tensor, *, chunk_size: int = 1024
) -> torch.Tensor:
    """(R, T-1) log p(tokens[t+1] | tokens[:t+1]) under plain causal attention over the real (unpadded) tokens."""
    (*_, hidden) = hidden_states(model, tokens, attention_mask, _positions(attention_mask))
    logp, _ = token_logprobs(hidden[:, :-1], tokens[:, 1:], logit_head(model), chunk_size=chunk_size)
    return logp
