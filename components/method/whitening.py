"""Whitening of block features before rewards (docs/method.md §3).

- ``sample``: the paper's form. For each (chunk, block) group, X (n x D) = U S Vᵀ and W = U diag(1/S) Uᵀ (singular
  values below ``rel_tol * S_max`` dropped); samples become W X and the ground truth of row i becomes
  (Σ_j W_ij) · gt. Distinct samples come out orthonormal, so the diversity term is exactly 0 unless samples coincide,
  and the ground truth is only rescaled (possibly by a negative factor) per row.
- ``feature``: whitening in feature space. Mean μ and covariance Σ of all valid generated features in the batch;
  W = (Σ + ε·tr(Σ)/D·I)^(-1/2); samples and ground truth become (x - μ) W. The whitened batch has (close to)
  identity covariance; samples keep their differences, so diversity stays informative.
Both return the ground truth per sample row, shape (..., n, D).
"""

from __future__ import annotations

import torch

from components.method.config import Whitening


def whiten_samples(
    samples: torch.Tensor, ground_truth: torch.Tensor, rel_tol: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample-space whitening of every group: samples (..., n, D), ground truth (..., D).

    W = U diag(1/S) Uᵀ is computed from the n x n Gram matrix X Xᵀ = U diag(S²) Uᵀ, which is cheaper than an
    SVD of X when D >> n (double precision keeps the squared spectrum accurate).
    """
    x = samples.double()
    evals, u = torch.linalg.eigh(x @ x.transpose(-1, -2))
    s = evals.clamp_min(0).sqrt()
    keep = s > rel_tol * s.amax(dim=-1, keepdim=True)
    inv = torch.where(keep, 1.0 / s.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))
    w = (u * inv[..., None, :]) @ u.transpose(-1, -2)  # (..., n, n)
    whitened = (w @ x).to(samples.dtype)
    gt = (w.sum(-1)[..., None] * ground_truth.double()[..., None, :]).to(samples.dtype)
    return whitened, gt


def whiten_features(
    samples: torch.Tensor, ground_truth: torch.Tensor, valid: torch.Tensor | None = None, eps: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature-space whitening with statistics of the batch's valid samples.

    samples (..., n, D), ground truth (..., D), ``valid`` (...) selects the groups that feed the statistics.
    """
    D = samples.shape[-1]
    pool = samples if valid is None else samples[valid.expand(samples.shape[:-2])]
    x = pool.reshape(-1, D).double()
    if x.shape[0] < 2:
        raise ValueError("feature-space whitening needs at least two valid samples in the batch")
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / (x.shape[0] - 1)
    cov = cov + eps * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(D, dtype=cov.dtype, device=cov.device)
    evals, evecs = torch.linalg.eigh(cov)
    w = (evecs * evals.clamp_min(1e-12).rsqrt()) @ evecs.T

    def apply(t: torch.Tensor) -> torch.Tensor:
        return ((t.double() - mean) @ w).to(samples.dtype)

    gt = apply(ground_truth)[..., None, :].expand_as(samples)
    return apply(samples), gt


def whiten(
    samples: torch.Tensor, ground_truth: torch.Tensor, method: Whitening, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch on ``method``; 'none' only broadcasts the ground truth to every sample row."""
    if method == "sample":
        return whiten_samples(samples, ground_truth)
    if method == "feature":
        return whiten_features(samples, ground_truth, valid)
    if method == "none":
        return samples, ground_truth[..., None, :].expand_as(samples)
    raise ValueError(f"whitening={method!r}; allowed: 'sample', 'feature', 'none'")
