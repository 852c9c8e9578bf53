import pytest
import torch

from components.engine.layout import StridedLayout
from components.method.config import LossConfig, RewardConfig
from components.method.loss import ebft_loss
from components.method.rewards import alignment_and_diversity, compute_rewards, rloo_advantages, token_advantages

ALL_VALID = torch.ones(1, 3, dtype=torch.bool)


def test_alignment_and_diversity_follow_the_formulas():
    B, n, NB, D = 2, 4, 3, 8
    gen, gt = torch.randn(B, n, NB, D), torch.randn(B, NB, D)
    alignment, diversity = alignment_and_diversity(gen, gt, ALL_VALID, "none")
    for b in range(B):
        for i in range(n):
            for k in range(NB):
                cos = torch.dot(gen[b, i, k], gt[b, k]) / (gen[b, i, k].norm() * gt[b, k].norm())
                assert torch.isclose(alignment[b, i, k], 2 * cos, atol=1e-5)
                others = sum(torch.dot(gen[b, i, k], gen[b, j, k]) for j in range(n) if j != i)
                assert torch.isclose(diversity[b, i, k], 2 * others / (n - 1), atol=1e-4)


def test_token_pooling_averages_rewards_over_the_block():
    gen, gt = torch.randn(2, 3, 4, 5, 8), torch.randn(2, 4, 5, 8)  # (B, n, NB, G, D)
    valid = torch.ones(1, 4, dtype=torch.bool)
    alignment, _ = alignment_and_diversity(gen, gt, valid, "none")
    per_token = [alignment_and_diversity(gen[:, :, :, g], gt[:, :, g], valid, "none")[0] for g in range(5)]
    assert torch.allclose(alignment, torch.stack(per_token).mean(0), atol=1e-6)


@pytest.mark.parametrize("n", [3, 4, 8])
@pytest.mark.parametrize("norm", ["none", "group"])
@pytest.mark.parametrize("whitening", ["none", "sample", "feature"])
def test_advantages_sum_to_zero_per_group(n, norm, whitening):
    gen, gt = torch.randn(5, n, 3, 16), torch.randn(5, 3, 16)
    cfg = RewardConfig(alignment_coef=1.0, diversity_coef=0.7, whitening=whitening, advantage_norm=norm)
    rewards = compute_rewards(gen, gt, ALL_VALID, cfg)
    assert rewards.advantages.sum(dim=1).abs().max() < 1e-5
    assert rewards.advantages.abs().max() > 1e-3


def test_baseline_of_a_sample_does_not_depend_on_that_sample():
    n = 5
    gen, gt = torch.randn(1, n, 1, 8), torch.randn(1, 1, 8)
    valid = torch.ones(1, 1, dtype=torch.bool)
    cfg = RewardConfig(alignment_coef=1.0, diversity_coef=1.0, whitening="none")
    before = compute_rewards(gen, gt, valid, cfg)
    moved = gen.clone()
    moved[0, 2] = torch.randn(8)
    after = compute_rewards(moved, gt, valid, cfg)
    baseline_before = before.reward - before.advantages
    baseline_after = after.reward - after.advantages
    assert torch.isclose(baseline_before[0, 2], baseline_after[0, 2], atol=1e-5)
    assert not torch.isclose(baseline_before[0, 0], baseline_after[0, 0], atol=1e-3)


def test_rloo_refuses_too_few_samples():
    a = torch.randn(1, 2, 3)
    with pytest.raises(ValueError, match="diversity baseline needs n_samples >= 3"):
        rloo_advantages(a, a, 1.0, 0.5)
    rloo_advantages(a, a, 1.0, 0.0)  # two samples are fine without diversity
    with pytest.raises(ValueError, match="RLOO needs n_samples >= 2"):
        rloo_advantages(a[:, :1], a[:, :1], 1.0, 0.0)


def test_invalid_blocks_get_no_advantage_and_advantages_reach_their_tokens():
    layout = StridedLayout(seq_len=14, context=2, stride=4, block_len=4)  # NB = 3
    valid = torch.tensor([[True, False, True], [True, True, False]])
    rewards = compute_rewards(torch.randn(2, 3, 3, 8), torch.randn(2, 3, 8), valid, RewardConfig())
    assert torch.all(rewards.advantages[0, :, 1] == 0) and torch.all(rewards.advantages[1, :, 2] == 0)
    tokens, mask = token_advantages(rewards.advantages, valid, layout)
    assert tokens.shape == mask.shape == (6, 12)
    nb = layout.num_blocks
    for g in range(layout.block_len):  # step-major: token g of block k at g * NB + k
        assert torch.equal(tokens[:, g * nb : (g + 1) * nb], rewards.advantages.reshape(6, nb))
    assert mask[3:, 2::nb].sum() == 0 and mask[:3, 1::nb].sum() == 0


def test_monte_carlo_ebft_gradient_matches_the_exact_feature_matching_gradient():
    """Toy categorical policy over K outcomes with fixed unit-norm features φ. The CFM loss
    ||E_p φ(y) - φ(y*)||² has an exact gradient; the EBFT estimator (α = β = 1, RLOO advantages, the policy-
    gradient loss as trained) must match it in expectation."""
    gen = torch.Generator().manual_seed(0)
    K, D, n, M = 6, 5, 4, 200_000
    phi = torch.nn.functional.normalize(torch.randn(K, D, generator=gen), dim=-1)
    target = phi[2]
    theta = torch.randn(K, generator=gen).requires_grad_()

    exact_loss = (torch.softmax(theta, 0) @ phi - target).square().sum()
    (exact,) = torch.autograd.grad(exact_loss, theta)

    y = torch.multinomial(torch.softmax(theta, 0).detach(), M * n, replacement=True, generator=gen).view(M, n)
    cfg = RewardConfig(alignment_coef=1.0, diversity_coef=1.0, whitening="none")
    rewards = compute_rewards(phi[y][:, :, None], target.expand(M, 1, D), torch.ones(1, 1, dtype=torch.bool), cfg)
    logp = torch.log_softmax(theta, 0)[y].reshape(M * n, 1)
    loss, _ = ebft_loss(
        logp,
        rewards.advantages.reshape(M * n, 1),
        torch.ones(M * n, 1, dtype=torch.bool),
        torch.zeros(1, 1),
        torch.ones(1, 1, dtype=torch.bool),
        LossConfig(rl_coef=1.0, ce_coef=0.0),
    )
    (estimate,) = torch.autograd.grad(loss, theta)
    assert (estimate - exact).norm() < 0.03 * exact.norm(), (estimate, exact)
