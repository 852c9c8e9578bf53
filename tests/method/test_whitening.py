import torch

from components.method.rewards import alignment_and_diversity
from components.method.whitening import shrunk_covariance, whiten_features, whiten_samples


def test_sample_whitening_makes_distinct_samples_orthonormal():
    x = torch.randn(6, 5, 4, 64)  # groups of n=4 samples in 64 dims
    gt = torch.randn(6, 5, 64)
    xw, gtw = whiten_samples(x, gt)
    gram = xw @ xw.transpose(-1, -2)
    assert torch.allclose(gram, torch.eye(4).expand_as(gram), atol=1e-5)
    # the ground truth is only rescaled, per sample row
    ratio = gtw / gt[..., None, :]
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), atol=1e-4)


def test_sample_whitening_zeroes_the_diversity_of_distinct_samples():
    gen = torch.randn(2, 4, 3, 32)  # (B, n, NB, D)
    gt = torch.randn(2, 3, 32)
    valid = torch.ones(1, 3, dtype=torch.bool)
    _, diversity = alignment_and_diversity(gen, gt, valid, "sample")
    assert diversity.abs().max() < 1e-5
    _, raw = alignment_and_diversity(gen, gt, valid, "none")
    assert raw.abs().max() > 0.1


def test_sample_whitening_survives_repeated_samples():
    x = torch.randn(1, 4, 16)
    x[0, 1] = x[0, 0]
    xw, gtw = whiten_samples(x, torch.randn(1, 16))
    assert torch.isfinite(xw).all() and torch.isfinite(gtw).all()
    assert torch.allclose(xw[0, 0], xw[0, 1])  # equal samples stay equal


def test_feature_whitening_decorrelates_and_centres():
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(16, 16, generator=gen)
    x = (torch.randn(400, 5, 16, generator=gen) @ mix) + 3.0  # correlated, shifted features; 2,000 samples
    gt = torch.randn(400, 16, generator=gen)
    xw, gtw = whiten_features(x, gt, renormalise=False)
    flat = xw.reshape(-1, 16).double()
    before, after = torch.linalg.cond(torch.cov(x.reshape(-1, 16).double().T)), torch.linalg.cond(torch.cov(flat.T))
    assert after < before / 100, (before, after)  # not 1: low-variance directions are shrunk towards the mean
    assert torch.allclose(flat.mean(0), torch.zeros(16, dtype=flat.dtype), atol=1e-4)
    assert gtw.shape == xw.shape and torch.equal(gtw[:, 0], gtw[:, 3])


def test_feature_whitening_statistics_come_from_valid_groups_only():
    x = torch.randn(50, 4, 8)
    gt = torch.randn(50, 8)
    valid = torch.ones(50, dtype=torch.bool)
    valid[:10] = False
    poisoned = x.clone()
    poisoned[:10] = 1e6  # invalid groups must not move the statistics
    a, _ = whiten_features(x, gt, valid)
    b, _ = whiten_features(poisoned, gt, valid)
    assert torch.allclose(a[10:], b[10:], atol=1e-5)


def test_feature_whitening_keeps_alignment_and_diversity_on_one_scale_with_fewer_samples_than_dimensions():
    """D = 1024 features, 500 samples (125 groups of 4 that share their prefix's direction): the plain covariance
    is singular. Before the fix, the ground truth came out ~460 long and samples ~22, and diversity was ~60x
    alignment; the shrunk, renormalised whitening keeps both terms of comparable size."""
    gen = torch.Generator().manual_seed(0)
    prefix = torch.randn(125, 1, 1024, generator=gen)
    samples = torch.nn.functional.normalize(prefix + 0.7 * torch.randn(125, 4, 1024, generator=gen), dim=-1)
    gt = torch.nn.functional.normalize(prefix[:, 0] + 0.7 * torch.randn(125, 1024, generator=gen), dim=-1)
    xw, gtw = whiten_features(samples, gt)
    assert torch.allclose(xw.norm(dim=-1), torch.ones(125, 4), atol=1e-4)
    assert torch.allclose(gtw.norm(dim=-1), torch.ones(125, 4), atol=1e-4)
    alignment, diversity = alignment_and_diversity(
        samples.unsqueeze(2), gt.unsqueeze(1), torch.ones(1, 1, dtype=torch.bool), "feature"
    )
    a, d = alignment.abs().mean().item(), diversity.abs().mean().item()
    assert 0.5 < a / d < 2, (a, d)
    assert alignment.mean() > 0.2 and diversity.mean() > 0.1  # still informative: truth near, samples alike


def test_shrinkage_vanishes_with_plenty_of_samples_and_is_strong_with_few():
    gen = torch.Generator().manual_seed(0)
    _, many = shrunk_covariance(torch.randn(20_000, 8, generator=gen).double() * torch.arange(1, 9).double())
    _, few = shrunk_covariance(torch.randn(50, 512, generator=gen).double())
    assert many < 0.05 and few > 0.5
