"""Verifiable rewards of whole answers (the RLVR baseline, docs/method.md §6): each sampled answer against what its
prompt's document says is right. Each reward is in [0, 1].

A reward scores a batch, so that one which runs programs (the unit-test reward, components/evaluation/
unit_test_reward.py) can run them in parallel. Text rewards compare an answer with its reference answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import sacrebleu


class AnswerReward(Protocol):
    def __call__(self, answers: list[str], references: list[str], doc_ids: list[int]) -> list[float]:
        """``answers[i]`` was sampled for the document ``doc_ids[i]`` of the training split (its index in
        data/train.jsonl), whose reference answer is ``references[i]``."""
        ...


def chrf_reward(answer: str, reference: str) -> float:
    """sacrebleu's sentence chrF (character n-gram F-score, the translation metric the evaluation reports) / 100: dense,
    so partly right answers are told apart from wrong ones."""
    return sacrebleu.sentence_chrf(answer.strip(), [reference.strip()]).score / 100.0


def exact_match_reward(answer: str, reference: str) -> float:
    return float(answer.strip() == reference.strip())


def per_answer(score: Callable[[str, str], float]) -> AnswerReward:
    def reward(answers: list[str], references: list[str], doc_ids: list[int]) -> list[float]:
        return [score(a, r) for a, r in zip(answers, references, strict=True)]

    return reward


TEXT_REWARDS: dict[str, AnswerReward] = {"chrf": per_answer(chrf_reward), "exact_match": per_answer(exact_match_reward)}
