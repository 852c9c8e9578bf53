"""Whitening of block features before rewards (docs/method.md §3).

- ``sample``: the paper's form. For each (chunk, block) group, X (n x D) = U S Vᵀ and W = U diag(1/S) Uᵀ (singular
  values below ``rel_tol * S_max`` dropped); samples become W X and the ground truth of row i becomes
  (Σ_j W_ij) · gt. Distinct samples come out orthonormal, so the diversity term is exactly 0 unless samples coincide,
  and the ground truth is only rescaled (possibly by a negative factor) per row.
- ``feature``: whitening in feature space. Mean μ and covariance of all valid generated features in the batch,
  shrunk towards μ_λ·I with the Ledoit-Wolf weight ρ (estimated from the batch): Σ* = (1-ρ)Σ + ρ μ_λ I,
  W = Σ*^(-1/2). With fewer samples than dimensions the plain covariance is singular: inverting it (or a small ridge
  on it) blows up whatever the ground truth has outside the samples' span and makes the samples orthogonal, which
  zeroes diversity as sample whitening does. Samples and ground truth become (x - μ) W, renormalised to unit length
  like the features themselves, so alignment (a cosine) and diversity (dot products) stay on one scale.
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
    samples: torch.Tensor, ground_truth: torch.Tensor, valid: torch.Tensor | None = None, renormalise: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature-space whitening with shrunk statistics of the batch's valid samples.

    samples (..., n, D), ground truth (..., D), ``valid`` (...) selects the groups that feed the statistics.
    """
    D = samples.shape[-1]
    pool = samples if valid is None else samples[valid.expand(samples.shape[:-2])]
    x = pool.reshape(-1, D).double()
    if x.shape[0] < 2:
        raise ValueError("feature-space whitening needs at least two valid samples in the batch")
    mean = x.mean(0)
    cov, _ = shrunk_covariance(x - mean)
    evals, evecs = torch.linalg.eigh(cov)
    w = (evecs * evals.clamp_min(1e-30).rsqrt()) @ evecs.T

    def apply(t: torch.Tensor) -> torch.Tensor:
        out = (t.double() - mean) @ w
        if renormalise:
            out = torch.nn.functional.normalize(out, dim=-1, eps=1e-12)
        return out.to(samples.dtype)

    gt = apply(ground_truth)[..., None, :].expand_as(samples)
    return apply(samples), gt


def shrunk_covariance(centred: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Ledoit-Wolf (2004): the covariance of ``centred`` (N, D) shrunk towards μ·I, and the weight ρ used."""
    n, d = centred.shape
    cov = centred.T @ centred / n
    mu = cov.diagonal().mean()
    target = mu * torch.eye(d, dtype=cov.dtype, device=cov.device)
    d2 = (cov - target).square().sum()
    # (1/N²) Σ_k ||x_k x_kᵀ - S||², expanded so that no D x D matrix per sample is formed
    norms = centred.square().sum(1)
    b2 = (norms.square() - 2 * ((centred @ cov) * centred).sum(1) + cov.square().sum()).sum() / n**2
    rho = 1.0 if d2 <= 0 else float((b2 / d2).clamp(0.0, 1.0))
    if mu <= 0:  # every sample identical: nothing to whiten
        return torch.eye(d, dtype=cov.dtype, device=cov.device), 1.0
    return (1 - rho) * cov + rho * target, rho


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
