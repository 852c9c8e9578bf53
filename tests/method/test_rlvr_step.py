"""The RLVR baseline's parts: answer rewards on known answers, leave-one-out advantages, complete Q&A documents from
packed chunks, and a few tiny-model steps that raise a verifiable reward."""

import pytest
import torch

from components.data.chunk_store import ChunkBatch
from components.data.tiny_models import tiny_causal_lm
from components.engine.layout import StridedLayout
from components.method.answer_rewards import chrf_reward, exact_match_reward, per_answer
from components.method.config import EBFTStepConfig, RLVRConfig
from components.method.rlvr_step import RLVRStep, leave_one_out_advantages, qa_documents

EOS = 2


class DigitTokenizer:
    """Token i decodes to "t{i}"; EOS and padding are special."""

    eos_token_id, pad_token_id = EOS, 0

    def batch_decode(self, rows, skip_special_tokens=True):
        return [" ".join(f"t{t}" for t in row if not (skip_special_tokens and t in (0, EOS))) for row in rows]


def test_answer_rewards_on_known_answers():
    reference = "The cat sat on the mat."
    assert chrf_reward(reference, reference) == pytest.approx(1.0)
    assert chrf_reward("Teh cta sta no hte mta.", reference) < 0.35
    assert chrf_reward("The cat sat on a mat.", reference) > 0.6  # dense: nearly right beats garbled
    assert exact_match_reward(" The cat sat on the mat.\n", reference) == 1.0
    assert exact_match_reward("The cat sat on a mat.", reference) == 0.0


def test_leave_one_out_advantages_sum_to_zero_per_prompt():
    rewards = torch.rand(5, 4)
    advantages = leave_one_out_advantages(rewards)
    assert torch.allclose(advantages.sum(-1), torch.zeros(5), atol=1e-6)
    assert advantages[0, 0] == pytest.approx(rewards[0, 0] - rewards[0, 1:].mean())


def test_complete_qa_documents_are_taken_from_a_packed_chunk():
    # doc 0 is cut by the chunk start; doc 1 complete; doc 2 complete; doc 3 cut by the chunk end
    ids = torch.tensor([9, 9, EOS, 5, 6, 7, 8, EOS, 10, 11, 12, EOS, 13, 14, 15])
    doc_ids = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    qa = torch.tensor([1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]).bool()
    assert qa_documents(ids, doc_ids, qa, EOS, limit=5) == [([5, 6], [7, 8, EOS], 1), ([10], [11, 12, EOS], 2)]
    assert qa_documents(ids, doc_ids, qa, EOS, limit=1) == [([5, 6], [7, 8, EOS], 1)]


def qa_batch(chunks: int, length: int = 16) -> ChunkBatch:
    """Chunks of complete documents: a 3-token prompt, then a 3-token answer and EOS."""
    ids, docs, qa = [], [], []
    for c in range(chunks):
        row_ids, row_docs, row_qa = [], [], []
        d = 0
        while len(row_ids) < length:
            row_ids += [5 + c, 6, 7, 20, 21, 22, EOS]
            row_docs += [d] * 7
            row_qa += [False] * 3 + [True] * 4
            d += 1
        ids.append(row_ids[:length])
        docs.append(row_docs[:length])
        qa.append(row_qa[:length])
    return ChunkBatch(torch.tensor(ids), torch.tensor(docs), torch.tensor(qa))


def test_a_few_steps_raise_a_verifiable_reward():
    torch.manual_seed(0)
    lm = tiny_causal_lm(vocab_size=32, seed=0)
    config = EBFTStepConfig(layout=StridedLayout(seq_len=16, context=4, stride=4, block_len=4),
                        rlvr=RLVRConfig(max_new_tokens=6))  # fmt: skip
    # the verifiable reward: how many of the answer's tokens are "t3" (a token the random model rarely draws)
    reward = per_answer(lambda answer, reference: answer.split().count("t3") / 6)
    step = RLVRStep(lm, config, DigitTokenizer(), reward=reward)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-2)
    batch = qa_batch(4)
    history = []
    for i in range(25):
        gens = [torch.Generator().manual_seed(100 * i + c) for c in range(4)]
        rollout = step.rollout(batch, gens)
        assert rollout.rewards.shape == (4, 4) and rollout.completions is not None
        loss, metrics = step.loss(rollout)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(metrics["reward"])
    assert sum(history[-5:]) / 5 > sum(history[:5]) / 5 + 0.2, history


def test_a_batch_without_complete_documents_still_gives_a_loss_to_back_propagate():
    lm = tiny_causal_lm(vocab_size=32, seed=0)
    config = EBFTStepConfig(layout=StridedLayout(seq_len=16, context=4, stride=4, block_len=4))
    step = RLVRStep(lm, config, DigitTokenizer())
    batch = ChunkBatch(torch.randint(3, 30, (2, 16)), torch.zeros(2, 16, dtype=torch.long),
                       torch.zeros(2, 16, dtype=torch.bool))  # fmt: skip
    rollout = step.rollout(batch)
    loss, metrics = step.loss(rollout)
    loss.backward()
    assert metrics["prompts"] == 0 and loss.item() == 0.0
