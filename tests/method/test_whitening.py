import torch

from components.method.rewards import alignment_and_diversity
from components.method.whitening import whiten_features, whiten_samples


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


def test_feature_whitening_gives_identity_covariance():
    mix = torch.randn(16, 16)
    x = (torch.randn(400, 5, 16) @ mix) + 3.0  # correlated, shifted features; 2,000 samples
    gt = torch.randn(400, 16)
    xw, gtw = whiten_features(x, gt, eps=1e-9)
    flat = xw.reshape(-1, 16).double()
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(16, dtype=cov.dtype), atol=1e-4)
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
