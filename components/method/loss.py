"""The EBFT objective (docs/method.md §4): policy gradient + γ·CE (+ KL to a frozen reference).

  loss = rl_coef · mean_seq(masked_mean_tokens(-A · log p_T(ŷ)))  +  ce_coef · CE(x)  +  kl_coef · KL(p_T || p_ref)

The policy-gradient term averages over sample sequences (B*n rows) the token-mean of -A·logp over the tokens of
valid blocks. CE is the token mean over counted ground-truth targets. The KL term is a function of
log r = log p_ref - log p on tokens sampled from p, differentiated through log p only (docs/method.md §4):
- k2 = ½·(log r)², clamped to 10 as the authors do: its expected gradient is exactly ∇KL(p || p_ref);
- k3 = r - 1 - log r: an unbiased, non-negative estimate of KL(p || p_ref), but its expected gradient as a loss is
  ∇KL(p_ref || p), the reverse direction.
k1 = -log r is not offered: it estimates the KL's value without bias, yet its expected gradient is zero.
"""

from __future__ import annotations

import torch

from components.method.config import KLEstimator, LossConfig


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 where nothing is counted."""
    mask = mask.expand_as(values).to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp_min(1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp_min(1.0)


def masked_std(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population standard deviation of ``values`` where ``mask``; 0 where nothing is counted."""
    mean = masked_mean(values, mask)
    return masked_mean((values - mean).square(), mask).sqrt()


KL_CLAMP = 10.0  # the authors clamp the per-token estimate to [-10, 10]


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: KLEstimator) -> torch.Tensor:
    """Per-token KL penalty on tokens sampled from p (see the module docstring for what each one's gradient is)."""
    log_ratio = ref_logp - logp
    if estimator == "k2":
        return (0.5 * log_ratio.square()).clamp(-KL_CLAMP, KL_CLAMP)
    if estimator == "k3":
        return log_ratio.exp() - 1.0 - log_ratio
    raise ValueError(f"kl_estimator={estimator!r}; allowed: 'k2', 'k3'")


def ebft_loss(
    gen_logprobs: torch.Tensor,
    token_advantages: torch.Tensor,
    token_mask: torch.Tensor,
    gt_logprobs: torch.Tensor,
    target_mask: torch.Tensor,
    config: LossConfig,
    ref_logprobs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Scalar loss and its detached parts.

    gen_logprobs, token_advantages, token_mask, ref_logprobs: (B*n, NB*G); gt_logprobs, target_mask: (B|1, L-1).
    """
    pg = masked_mean(-token_advantages.detach() * gen_logprobs, token_mask, dim=1).mean()
    ce = masked_mean(-gt_logprobs, target_mask)
    loss = config.rl_coef * pg + config.ce_coef * ce
    parts = {"pg_loss": pg.detach(), "ce": ce.detach()}
    if config.kl_coef > 0 and ref_logprobs is None:
        raise ValueError("loss.kl_coef > 0 needs the reference model's log-probs")
    if ref_logprobs is not None:  # reported whenever a reference exists, in the loss only if kl_coef > 0
        kl = masked_mean(kl_penalty(gen_logprobs, ref_logprobs, config.kl_estimator), token_mask, dim=1).mean()
        if config.kl_coef > 0:
            loss = loss + config.kl_coef * kl
        parts["kl"] = kl.detach()
    parts["loss"] = loss.detach()
    return loss, parts
