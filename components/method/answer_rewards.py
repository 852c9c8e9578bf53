"""Verifiable rewards of whole answers (the RLVR baseline, docs/method.md §6): a sampled answer against the reference
answer of its prompt. Each reward is in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable

import sacrebleu

AnswerReward = Callable[[str, str], float]  # (sampled answer, reference answer) -> reward


def chrf_reward(answer: str, reference: str) -> float:
    """sacrebleu's sentence chrF (character n-gram F-score, the translation metric the evaluation reports) / 100: dense,
    so partly right answers are told apart from wrong ones."""
    return sacrebleu.sentence_chrf(answer.strip(), [reference.strip()]).score / 100.0


def exact_match_reward(answer: str, reference: str) -> float:
    return float(answer.strip() == reference.strip())


ANSWER_REWARDS: dict[str, AnswerReward] = {"chrf": chrf_reward, "exact_match": exact_match_reward}
