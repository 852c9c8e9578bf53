import pytest
import torch

from components.data.tiny_models import tiny_causal_lm
from components.engine.causal_lm import check_logit_head
from components.engine.token_logprobs import token_logprobs


def reference(hidden, targets, head, temperature):
    logits = head(hidden).float() / temperature
    logp_all = torch.log_softmax(logits, -1)
    return logp_all.gather(-1, targets[..., None]).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1)


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunked_logprobs_and_gradients_equal_the_full_computation(chunk_size):
    head = torch.nn.Linear(16, 50, bias=False)
    hidden = torch.randn(3, 11, 16, requires_grad=True)
    targets = torch.randint(0, 50, (3, 11))
    logp, entropy = token_logprobs(hidden, targets, head, temperature=0.7, chunk_size=chunk_size, with_entropy=True)
    ref_logp, ref_entropy = reference(hidden, targets, head, 0.7)
    assert torch.allclose(logp, ref_logp, atol=1e-6) and torch.allclose(entropy, ref_entropy, atol=1e-5)
    assert not entropy.requires_grad
    w = torch.randn(3, 11)
    (g,) = torch.autograd.grad((logp * w).sum(), hidden)
    (ref_g,) = torch.autograd.grad((ref_logp * w).sum(), hidden)
    assert torch.allclose(g, ref_g, atol=1e-6)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="do not match"):
        token_logprobs(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.long), torch.nn.Linear(4, 5))


def test_models_with_unknown_logit_post_processing_are_refused():
    model = tiny_causal_lm()
    check_logit_head(model)  # a plain head passes
    original = model.forward

    def scaled_forward(*args, **kwargs):
        out = original(*args, **kwargs)
        out.logits = out.logits * 2.0
        return out

    model.forward = scaled_forward
    with pytest.raises(NotImplementedError, match="LlamaForCausalLM: logits differ"):
        check_logit_head(model)
