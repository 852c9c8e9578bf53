"""The RLVR baseline's step (docs/method.md §6): reinforcement learning with a verifiable reward on whole answers.

From each training chunk, its first complete Q&A documents (a prompt and its answer, EOS included, wholly inside the
chunk) -> n answers sampled per prompt with the current policy (seeded per chunk, as EBFT's samples) -> reward of
each answer: against the prompt's reference answer (components/method/answer_rewards.py), or by the document's
unit tests in the sandbox (components/evaluation/unit_test_reward.py, built by the train stage) -> leave-one-out
advantages A_i = r_i - mean_{j != i} r_j (they sum to 0 per prompt) -> on-policy policy gradient

  loss = mean_rows(masked_mean_tokens(-A · log p(answer))) + ce_coef · CE(chunks) + kl_coef · KL(p || p_base)

over the answer tokens. CE on the chunks is computed always (it is reported, like EBFT's) and weighted by
``rlvr.ce_coef`` (0 by default: pure RLVR). Same data, seeds, trainer, checkpoints and tracking as EBFT and SFT.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch

from components.data.chunk_store import ChunkBatch
from components.engine.causal_lm import compute_dtype
from components.engine.completions import Completions
from components.engine.masks import build_strided_masks
from components.engine.policy import as_policy_module, language_model
from components.engine.token_sampling import Generators
from components.method.answer_rewards import TEXT_REWARDS, AnswerReward
from components.method.config import EBFTStepConfig
from components.method.loss import kl_penalty, masked_mean


def qa_documents(
    ids: torch.Tensor, doc_ids: torch.Tensor, qa_mask: torch.Tensor, eos_id: int, limit: int
) -> list[tuple[list[int], list[int], int]]:
    """Up to ``limit`` complete Q&A documents of one chunk (1-D tensors): (prompt tokens, answer tokens + EOS,
    document id). A document that starts at the chunk's first token may be cut, so it is never taken."""
    found = []
    starts = [0, *((doc_ids[1:] != doc_ids[:-1]).nonzero().flatten() + 1).tolist(), len(doc_ids)]
    for start, end in itertools.pairwise(starts[1:]):  # the document at the chunk's start may be cut: skipped
        answer = qa_mask[start:end]
        tokens = ids[start:end].tolist()
        n_prompt = int((~answer).sum())
        in_order = not bool(answer[:n_prompt].any()) and bool(answer[n_prompt:].all())  # prompt, then answer
        complete = tokens[-1] == eos_id and n_prompt > 0 and in_order
        if complete and n_prompt < len(tokens) - 1:
            found.append((tokens[:n_prompt], tokens[n_prompt:], int(doc_ids[start])))
        if len(found) == limit:
            break
    return found


def leave_one_out_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """(P, n) rewards -> A_i = r_i - mean of the other n - 1 (sums to 0 over each prompt's samples)."""
    n = rewards.shape[-1]
    return rewards - (rewards.sum(-1, keepdim=True) - rewards) / (n - 1)


@dataclass
class RLVRRollout:
    batch: ChunkBatch
    completions: Completions | None  # None: no chunk of the batch holds a complete Q&A document
    prompts: list[list[int]]
    doc_ids: list[int]  # each prompt's document (its index in the split's documents)
    references: list[str]
    answers: list[str]
    rewards: torch.Tensor  # (P, n)
    advantages: torch.Tensor  # (P, n)
    ref_logprobs: torch.Tensor | None
    timings: dict[str, float]

    @property
    def sampled_tokens(self) -> int:
        return 0 if self.completions is None else int(self.completions.completion_mask.sum())


class RLVRStep:
    def __init__(
        self,
        policy: torch.nn.Module,
        config: EBFTStepConfig,
        tokenizer,
        *,
        reward: AnswerReward | None = None,
        reference: torch.nn.Module | None = None,
    ):
        self.policy, self.config, self.tokenizer = as_policy_module(policy), config, tokenizer
        self.rlvr = config.rlvr
        if reward is None and self.rlvr.reward not in TEXT_REWARDS:
            raise ValueError(f"rlvr.reward={self.rlvr.reward!r} needs the training tasks' tests: pass it as reward=")
        self.reward = reward or TEXT_REWARDS[self.rlvr.reward]
        self.reference = reference
        if self.rlvr.kl_coef > 0 and reference is None:
            raise ValueError("rlvr.kl_coef > 0 needs a frozen reference model")
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos

    @torch.no_grad()
    def rollout(self, batch: ChunkBatch, generators: Generators = None, _features=None) -> RLVRRollout:
        start = time.perf_counter()
        n, limit = self.config.sampling.n_samples, self.rlvr.prompts_per_chunk
        prompts, answers, doc_ids, gens = [], [], [], []
        for b in range(batch.input_ids.shape[0]):
            docs = qa_documents(batch.input_ids[b], batch.doc_ids[b], batch.qa_mask[b], self.eos, limit)
            for prompt, answer, doc_id in docs:
                prompts.append(prompt)
                answers.append(answer)
                doc_ids.append(doc_id)
                if isinstance(generators, list | tuple):
                    gens.append(generators[b])
        if not prompts:
            empty = torch.zeros(0, n)
            return RLVRRollout(batch, None, [], [], [], [], empty, empty, None, {"time/sample_s": 0.0})
        completions = self.policy(None, generator=gens or generators, complete={
            "prompts": prompts, "n": n, "max_new_tokens": self.rlvr.max_new_tokens, "eos_id": self.eos,
            "pad_id": self.pad, "temperature": self.config.sampling.temperature, "top_p": self.config.sampling.top_p,
        })  # fmt: skip
        sampled = time.perf_counter()
        texts = self.tokenizer.batch_decode(completions.completion_ids(), skip_special_tokens=True)
        references = self.tokenizer.batch_decode(answers, skip_special_tokens=True)
        each = [i // n for i in range(len(texts))]
        scores = self.reward(texts, [references[i] for i in each], [doc_ids[i] for i in each])
        rewards = torch.tensor(scores, dtype=torch.float32).view(len(prompts), n)
        ref_logprobs = None
        if self.reference is not None:
            reference = as_policy_module(self.reference)
            ref_logprobs = reference(completions.tokens, attention_mask=completions.attention_mask)
        timings = {"time/sample_s": sampled - start, "time/reward_s": time.perf_counter() - sampled}
        return RLVRRollout(batch, completions, prompts, doc_ids, references, texts, rewards,
                           leave_one_out_advantages(rewards), ref_logprobs, timings)  # fmt: skip

    def loss(self, rollout: RLVRRollout) -> tuple[torch.Tensor, dict[str, float]]:
        batch = rollout.batch
        masks = build_strided_masks(
            self.config.layout,
            doc_ids=batch.doc_ids if self.config.document_masking else None,
            qa_mask=batch.qa_mask if self.config.qa_masking else None,
            dtype=compute_dtype(language_model(self.policy)),
            device=batch.input_ids.device,
        )
        ce = masked_mean(-self.policy(batch.input_ids, masks, chunk_size=self.config.logit_chunk_size),
                         masks.target_mask)  # fmt: skip
        loss = self.rlvr.ce_coef * ce
        metrics = {"ce": ce.item(), **rollout.timings, "prompts": float(len(rollout.prompts))}
        done = rollout.completions
        if done is not None:
            logp = self.policy(done.tokens, attention_mask=done.attention_mask,
                               chunk_size=self.config.logit_chunk_size)  # fmt: skip
            advantages = rollout.advantages.to(logp.device).reshape(-1, 1)
            pg = masked_mean(-advantages * logp, done.completion_mask, dim=1).mean()
            loss = loss + pg
            metrics |= {
                "pg_loss": pg.item(),
                "reward": rollout.rewards.mean().item(),
                "reward_std": rollout.rewards.std(-1).mean().item() if rollout.rewards.shape[-1] > 1 else 0.0,
                "answer_tokens": done.completion_mask.sum(1).float().mean().item(),
            }
            if rollout.ref_logprobs is not None:
                kl = masked_mean(kl_penalty(logp, rollout.ref_logprobs, self.config.loss.kl_estimator),
                                 done.completion_mask, dim=1).mean()  # fmt: skip
                loss = loss + self.rlvr.kl_coef * kl
                metrics["kl"] = kl.item()
        metrics["loss"] = loss.item()
        return loss, metrics
