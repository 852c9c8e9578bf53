"""Evaluation decoding: batched autoregressive generation with a KV cache (HF ``generate``) and stop sequences, for
the downstream tasks (code, translation). The EBFT rollout is a different thing: components/engine/sampler.py.

Prompts are sorted by length so a batch pads little (left padding); ``samples`` completions per prompt; greedy at
temperature 0. A completion is cut before the first stop sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from components.evaluation.config import DecodingConfig


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


@torch.no_grad()
def generate_completions(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    stops: Sequence[Sequence[str]],
    config: DecodingConfig,
    desc: str = "generate",
) -> list[list[str]]:
    """``config.samples`` completions for every prompt (in prompt order), each cut at its prompt's stops."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # many causal LM tokenizers have none; EOS pads (it is masked out anyway)
        tokenizer.pad_token = tokenizer.eos_token
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[str]] = [[] for _ in prompts]
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt")
    for start in range(0, len(order), config.batch_size):
        batch = order[start : start + config.batch_size]
        enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(device)
        stop_union = sorted({s for i in batch for s in stops[i]})
        sampling = {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p}
        if config.temperature > 0:
            torch.manual_seed(config.seed + start)  # generate draws from the global generator
        out = model.generate(
            **enc,
            max_new_tokens=config.max_new_tokens,
            num_return_sequences=config.samples,
            pad_token_id=pad,
            stop_strings=stop_union or None,
            tokenizer=tokenizer,
            **(sampling if config.temperature > 0 else {"do_sample": False}),
        )
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for j, i in enumerate(batch):
            results[i] = [truncate_at_stop(t, stops[i]) for t in texts[j * config.samples : (j + 1) * config.samples]]
        bar.update(len(batch))
    bar.close()
    return results
