import pytest
import torch

from components.method.config import LossConfig
from components.method.loss import ebft_loss, kl_penalty, masked_mean, masked_std


def test_kl_estimators_values_on_a_categorical():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(10, generator=gen), 0)
    q = torch.softmax(torch.randn(10, generator=gen), 0)
    exact = (p * (p / q).log()).sum()
    y = torch.multinomial(p, 400_000, replacement=True, generator=gen)
    logp, logq = p.log()[y], q.log()[y]
    assert torch.isclose(kl_penalty(logp, logq, "k3").mean(), exact, rtol=0.02)
    assert (kl_penalty(logp, logq, "k3") >= 0).all() and (kl_penalty(logp, logq, "k2") >= 0).all()
    assert torch.allclose(kl_penalty(logp, logq, "k2"), 0.5 * (logp - logq) ** 2)
    far = kl_penalty(torch.tensor([0.0]), torch.tensor([-30.0]), "k2")
    assert far.item() == 10.0  # clamped as the authors do


def expected_gradient(estimator: str, logits: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """E_{y~p}[∇ penalty(y)] exactly (every token weighted by its detached probability), as a loss sees it."""
    logits = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, 0)
    weights = logp.detach().exp()
    (weights * kl_penalty(logp, torch.log_softmax(ref, 0), estimator)).sum().backward()
    return logits.grad


def exact_gradient(logits: torch.Tensor, ref: torch.Tensor, reverse: bool) -> torch.Tensor:
    logits = logits.clone().requires_grad_(True)
    logp, logq = torch.log_softmax(logits, 0), torch.log_softmax(ref, 0)
    kl = (logq.exp() * (logq - logp)).sum() if reverse else (logp.exp() * (logp - logq)).sum()
    kl.backward()
    return logits.grad


def test_k2_as_a_loss_has_the_gradient_of_kl_and_k3_that_of_the_reverse_kl():
    gen = torch.Generator().manual_seed(1)
    logits, ref = torch.randn(12, generator=gen), torch.randn(12, generator=gen)
    assert torch.allclose(expected_gradient("k2", logits, ref), exact_gradient(logits, ref, reverse=False), atol=1e-6)
    assert torch.allclose(expected_gradient("k3", logits, ref), exact_gradient(logits, ref, reverse=True), atol=1e-6)
    assert not torch.allclose(exact_gradient(logits, ref, False), exact_gradient(logits, ref, True), atol=1e-3)


def test_k1_is_refused_with_the_allowed_estimators():
    with pytest.raises(ValueError, match=r"'k2'.*'k3'"):
        LossConfig(kl_estimator="k1")


def test_masked_statistics():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 100.0]])
    m = torch.tensor([[True, True, False], [True, True, False]])
    assert masked_mean(x, m) == 2.5
    assert torch.equal(masked_mean(x, m, dim=1), torch.tensor([1.5, 3.5]))
    assert torch.isclose(masked_std(x, m), torch.tensor(1.25).sqrt())
    assert masked_mean(x, torch.zeros_like(m)) == 0


def test_loss_combines_its_terms():
    gen_logp = torch.randn(4, 6, requires_grad=True)
    adv = torch.randn(4, 6)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0] = False  # a sequence with no valid block counts as zero
    gt_logp = -torch.rand(2, 9)
    target_mask = torch.ones(1, 9, dtype=torch.bool)
    ref = gen_logp.detach() + 0.1
    cfg = LossConfig(rl_coef=1.0, ce_coef=0.1, kl_coef=0.5, kl_estimator="k2")
    loss, parts = ebft_loss(gen_logp, adv, mask, gt_logp, target_mask, cfg, ref)
    pg = sum((-adv[r] * gen_logp[r]).mean() for r in range(1, 4)) / 4
    ce = -gt_logp.mean()
    kl = torch.tensor(0.5 * 0.1**2) * 3 / 4
    assert torch.isclose(parts["pg_loss"], pg.detach(), atol=1e-6)
    assert torch.isclose(parts["ce"], ce, atol=1e-6)
    assert torch.isclose(parts["kl"], kl, atol=1e-6)
    assert torch.isclose(loss, pg + 0.1 * ce + 0.5 * kl, atol=1e-6)
    loss.backward()
    assert torch.all(gen_logp.grad[0] == 0)  # masked rows get no gradient


def test_kl_needs_a_reference():
    with pytest.raises(ValueError, match="kl_coef > 0 needs the reference"):
        ebft_loss(
            torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool),
            torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), LossConfig(kl_coef=0.1),
        )  # fmt: skip


@pytest.mark.parametrize("field,value", [("ce_coef", -0.1), ("kl_estimator", "k4"), ("rl", 1.0)])
def test_bad_loss_settings_name_the_key(field, value):
    with pytest.raises(ValueError, match=field):
        LossConfig(**{field: value})
