"""Teacher-forced cross-entropy of a model on held-out chunks, per chunk: overall, and on answer tokens."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from components.data.chunk_store import ChunkSplit
from components.engine.causal_lm import compute_dtype, model_device
from components.engine.forward import teacher_forced_logprobs
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks


@torch.no_grad()
def validation_ce(
    model: torch.nn.Module, chunks: ChunkSplit, layout: StridedLayout, *, document_masking: bool, batch_size: int = 4
) -> list[dict]:
    """One record per chunk: ``ce`` (nats/token over counted targets) and, where the chunk has answer tokens,
    ``answer_ce``; ``tokens``/``answer_tokens`` are the counts behind them."""
    records = []
    device = model_device(model)
    for lo in tqdm(range(0, len(chunks), batch_size), desc="validation CE", unit="batch"):
        batch = chunks.batch(slice(lo, lo + batch_size)).to(device)
        masks = build_strided_masks(
            layout, doc_ids=batch.doc_ids if document_masking else None, dtype=compute_dtype(model), device=device
        )
        nll = -teacher_forced_logprobs(model, batch.input_ids, masks)  # (B, L-1)
        counted = masks.target_mask.expand_as(nll)
        answers = counted & batch.qa_mask[:, 1:]
        for b in range(nll.shape[0]):
            record = {"chunk": lo + b, "tokens": int(counted[b].sum()), "ce": float(nll[b][counted[b]].mean())}
            if answers[b].any():
                record.update(answer_tokens=int(answers[b].sum()), answer_ce=float(nll[b][answers[b]].mean()))
            records.append(record)
    return records


def summarise_ce(records: list[dict]) -> dict:
    """Token-weighted means and perplexities."""
    out = {}
    for key, count in (("ce", "tokens"), ("answer_ce", "answer_tokens")):
        rows = [r for r in records if key in r]
        if rows:
            total = sum(r[count] for r in rows)
            mean = sum(r[key] * r[count] for r in rows) / total
            out[f"val_{key}"] = mean
            out[f"val_{key.replace('ce', 'perplexity')}"] = math.exp(mean)
    return out
