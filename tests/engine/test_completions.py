import torch

from components.data.tiny_models import tiny_causal_lm
from components.engine.completions import sample_completions, sequence_logprobs
from components.engine.policy import StridedPolicy

EOS, PAD = 2, 0


def test_padded_rows_score_exactly_as_they_would_alone():
    model = tiny_causal_lm(seed=3).eval()
    prompts = [[5, 6, 7, 8, 9], [11, 12]]
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    done = sample_completions(model, prompts, 3, max_new_tokens=6, eos_id=EOS, pad_id=PAD, generator=gens)
    assert done.tokens.shape[0] == 6
    logp = sequence_logprobs(model, done.tokens, done.attention_mask)
    for row, completion in enumerate(done.completion_ids()):
        alone = torch.tensor([prompts[row // 3] + completion])
        with torch.no_grad():
            ref = torch.log_softmax(model(alone).logits.float(), -1)[0, :-1].gather(-1, alone[0, 1:, None])[:, 0]
        ours = logp[row][done.completion_mask[row]]
        assert torch.allclose(ours, ref[-len(completion) :], atol=1e-5), row


def test_completions_stop_at_eos_and_are_reproducible_per_prompt():
    model = tiny_causal_lm(seed=4).eval()
    a = sample_completions(model, [[5, 6], [7, 8, 9]], 2, max_new_tokens=8, eos_id=EOS, pad_id=PAD,
                           generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])  # fmt: skip
    b = sample_completions(model, [[7, 8, 9]], 2, max_new_tokens=8, eos_id=EOS, pad_id=PAD,
                           generator=[torch.Generator().manual_seed(2)])  # fmt: skip
    assert a.completion_ids()[2:] == b.completion_ids()  # a prompt's samples do not depend on its batch
    for ids in a.completion_ids():
        assert EOS not in ids[:-1] and len(ids) <= 8


def test_the_policy_module_runs_both_as_one_forward():
    policy = StridedPolicy(tiny_causal_lm(seed=5))
    done = policy(None, complete={"prompts": [[5, 6]], "n": 2, "max_new_tokens": 4, "eos_id": EOS, "pad_id": PAD})
    logp = policy(done.tokens, attention_mask=done.attention_mask)
    assert logp.shape == (2, done.tokens.shape[1] - 1) and logp.requires_grad
