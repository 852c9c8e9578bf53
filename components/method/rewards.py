"""Rewards and RLOO advantages of sampled blocks (docs/method.md §4).

Per (chunk, block) group of n samples with (whitened) features φ_i and ground truth φ_gt:
  alignment  a_i = 2 · cos(φ_i, φ_gt)
  diversity  d_i = 2/(n-1) · Σ_{j≠i} <φ_i, φ_j>
  reward     r_i = α a_i - β d_i
  baseline   b_i = α (Σ_j a_j - a_i)/(n-1) - β (Σ_j d_j - 2 d_i)/(n-2)      (the diversity term needs n >= 3)
  advantage  A_i = r_i - b_i,  Σ_i A_i = 0 exactly.
The diversity baseline removes every pair that involves sample i, so b_i does not depend on sample i and the
policy gradient stays unbiased. With 'per token' pooling the rewards are averaged over the block's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from components.engine.layout import StridedLayout
from components.method.config import RewardConfig, Whitening
from components.method.whitening import whiten


@dataclass(frozen=True)
class Rewards:
    """Everything per (chunk b, sample i, block k), shape (B, n, NB); ``valid`` is (B|1, NB)."""

    alignment: torch.Tensor
    diversity: torch.Tensor
    reward: torch.Tensor
    advantages: torch.Tensor
    valid: torch.Tensor


def alignment_and_diversity(
    gen: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, whitening: Whitening
) -> tuple[torch.Tensor, torch.Tensor]:
    """gen (B, n, NB, [G,] D) and gt (B, NB, [G,] D) -> alignment and diversity, each (B, n, NB)."""
    if gen.dim() != gt.dim() + 1:
        raise ValueError(f"generated features {tuple(gen.shape)} and ground truth {tuple(gt.shape)} do not match")
    n = gen.shape[1]
    groups = gen.movedim(1, -2)  # (B, NB, [G,] n, D)
    group_valid = valid.expand(gt.shape[0], -1)
    if gen.dim() == 5:  # per-token pooling: one group per token of the block
        group_valid = group_valid[..., None]
    x, g = whiten(groups, gt, whitening, group_valid)
    cos = torch.nn.functional.cosine_similarity(x, g, dim=-1, eps=1e-8)
    alignment = 2.0 * cos
    if n > 1:
        gram = x @ x.transpose(-1, -2)
        diversity = 2.0 / (n - 1) * (gram.sum(-1) - gram.diagonal(dim1=-2, dim2=-1))
    else:
        diversity = torch.zeros_like(alignment)
    if gen.dim() == 5:  # per-token pooling: (B, NB, G, n) -> average over the block's tokens
        alignment, diversity = alignment.mean(2), diversity.mean(2)
    return alignment.movedim(-1, 1), diversity.movedim(-1, 1)


def rloo_advantages(
    alignment: torch.Tensor, diversity: torch.Tensor, alignment_coef: float, diversity_coef: float
) -> torch.Tensor:
    """Leave-one-out advantages over the sample dim (1) of (B, n, NB) alignment/diversity."""
    n = alignment.shape[1]
    if n < 2:
        raise ValueError(f"RLOO needs n_samples >= 2 per chunk, got {n}")
    if diversity_coef > 0 and n < 3:
        raise ValueError(f"the diversity baseline needs n_samples >= 3, got {n}; raise n or set diversity_coef=0")
    reward = alignment_coef * alignment - diversity_coef * diversity
    base_a = (alignment.sum(1, keepdim=True) - alignment) / (n - 1)
    base_d = (diversity.sum(1, keepdim=True) - 2 * diversity) / (n - 2) if n > 2 else torch.zeros_like(diversity)
    return reward - (alignment_coef * base_a - diversity_coef * base_d)


def compute_rewards(gen: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, config: RewardConfig) -> Rewards:
    """Rewards and advantages of a batch; advantages of invalid blocks are 0."""
    alignment, diversity = alignment_and_diversity(gen, gt, valid, config.whitening)
    reward = config.alignment_coef * alignment - config.diversity_coef * diversity
    advantages = rloo_advantages(alignment, diversity, config.alignment_coef, config.diversity_coef)
    if config.advantage_norm == "group":
        advantages = advantages / (reward.std(dim=1, keepdim=True) + 1e-6)
    advantages = advantages * valid[:, None, :]
    return Rewards(alignment, diversity, reward, advantages, valid)


def token_advantages(
    advantages: torch.Tensor, valid: torch.Tensor, layout: StridedLayout
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy each block's advantage to its G generated tokens: (B, n, NB) -> (B*n, NB*G) step-major, with the mask
    of tokens that take part in the policy gradient."""
    B, n, NB = advantages.shape
    G = layout.block_len
    tokens = advantages[:, :, None, :].expand(B, n, G, NB).reshape(B * n, G * NB)
    mask = valid[:, None, None, :].expand(B, n, G, NB).reshape(B * n, G * NB)
    return tokens, mask
