"""Translation quality on held-out pairs: corpus BLEU (13a tokenisation) and chrF with sacrebleu, plus per-pair
sentence scores for bootstrap comparisons. COMET needs weights that are not available offline."""

from __future__ import annotations

import sacrebleu
import torch

from components.data.chat import chat_prompt
from components.evaluation.decoding import DecodingConfig, generate_completions


def evaluate_translation(
    model: torch.nn.Module,
    tokenizer,
    pairs: list[dict],
    prompt_template: str,
    decoding: DecodingConfig,
    chat_template: bool = False,
) -> list[dict]:
    """``pairs``: held-out documents with ``prompt`` (source) and ``completion`` (reference); ``chat_template``: asked
    as a user turn, the way the training data was written."""
    prompts = [prompt_template.replace("{prompt}", p["prompt"]) for p in pairs]
    if chat_template:
        prompts = [chat_prompt(tokenizer, prompt) for prompt in prompts]
    hypotheses = generate_completions(model, tokenizer, prompts, [("\n",)] * len(prompts), decoding, desc="translate")
    records = []
    for pair, hyp in zip(pairs, hypotheses, strict=True):
        text, ref = hyp[0].strip(), pair["completion"].strip()
        records.append(
            {
                "source": pair["prompt"],
                "reference": ref,
                "hypothesis": text,
                "bleu": sacrebleu.sentence_bleu(text, [ref]).score,
                "chrf": sacrebleu.sentence_chrf(text, [ref]).score,
            }
        )
    return records


def summarise_translation(records: list[dict]) -> dict:
    if not records:
        return {}
    hyps, refs = [r["hypothesis"] for r in records], [[r["reference"] for r in records]]
    return {
        "translation_bleu": sacrebleu.corpus_bleu(hyps, refs).score,
        "translation_chrf": sacrebleu.corpus_chrf(hyps, refs).score,
        "translation_pairs": len(records),
    }
