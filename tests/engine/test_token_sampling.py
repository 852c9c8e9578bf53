import pytest
import torch

from components.engine.config import SamplingConfig
from components.engine.token_sampling import sample_next_tokens


def test_samples_follow_the_tempered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(40_000, 4)
    tokens, logp = sample_next_tokens(logits, 0.5, 1.0, torch.Generator().manual_seed(0))
    expected = torch.softmax(logits[0] / 0.5, 0)
    freq = torch.bincount(tokens, minlength=4).float() / tokens.numel()
    assert torch.allclose(freq, expected, atol=0.01)
    assert torch.allclose(logp, expected.log()[tokens])


def test_top_p_keeps_only_the_nucleus_but_reports_full_log_probs():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(20_000, 4)
    tokens, logp = sample_next_tokens(logits, 1.0, 0.75, torch.Generator().manual_seed(0))
    assert set(tokens.unique().tolist()) == {0, 1}  # 0.5 + 0.3 >= 0.75
    assert torch.allclose(logp, torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))[tokens])


def test_same_seed_same_tokens():
    logits = torch.randn(64, 30)
    a = sample_next_tokens(logits, 0.8, 0.9, torch.Generator().manual_seed(3))[0]
    b = sample_next_tokens(logits, 0.8, 0.9, torch.Generator().manual_seed(3))[0]
    c = sample_next_tokens(logits, 0.8, 0.9, torch.Generator().manual_seed(4))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("values", [{"temperature": 0}, {"top_p": 1.5}, {"n_samples": 0}, {"samples": 4}])
def test_bad_sampling_settings_are_refused(values):
    with pytest.raises(ValueError, match=next(iter(values))):
        SamplingConfig(**values)
