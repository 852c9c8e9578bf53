"""Feature-matching metrics on held-out chunks (the quantity EBFT optimises, measured without its whitening).

For every block, k samples from the model are embedded by the frozen feature network and compared with the block's
ground-truth features (from the feature cache):
- alignment: mean over samples of cos(φ_i, φ_gt) (pass@1-style), and best-of-k: max over samples;
- diversity: mean cosine between distinct samples;
- CFM loss: ||mean_i φ_i - φ_gt||², the conditional feature-matching loss (docs/method.md §1);
- token match: fraction of generated tokens equal to the ground truth at their position.
Per-chunk values average the chunk's valid blocks; the per-block alignments are kept for distribution plots.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from components.data.chunk_store import ChunkSplit
from components.data.order import chunk_generators
from components.engine.causal_lm import compute_dtype, model_device
from components.engine.config import SamplingConfig
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks
from components.engine.sampler import sample_strided
from components.method.feature_network import FeatureNetwork


@torch.no_grad()
def feature_matching(
    model: torch.nn.Module,
    features: FeatureNetwork,
    chunks: ChunkSplit,
    gt_features: torch.Tensor,
    layout: StridedLayout,
    sampling: SamplingConfig,
    *,
    document_masking: bool,
    seed: int = 0,
    batch_size: int = 2,
) -> tuple[list[dict], list[float]]:
    """Per-chunk metric records and every valid block's mean alignment (for histograms)."""
    device = model_device(model)
    records, block_alignment = [], []
    k = sampling.n_samples
    for lo in tqdm(range(0, len(chunks), batch_size), desc="feature matching", unit="batch"):
        batch = chunks.batch(slice(lo, lo + batch_size)).to(device)
        positions = torch.arange(lo, lo + batch.input_ids.shape[0])
        masks = build_strided_masks(
            layout, doc_ids=batch.doc_ids if document_masking else None, dtype=compute_dtype(model), device=device
        )
        gens = chunk_generators(seed, 0, positions.numpy(), device)
        samples = sample_strided(model, batch.input_ids, layout, sampling, gens, masks)
        gen, _ = features.strided_features(batch.input_ids, samples.step_major(layout), masks)
        gen = gen.flatten(3).float()  # (B, k, NB, D)
        gt = gt_features[lo : lo + batch.input_ids.shape[0]].to(gen).flatten(2)  # (B, NB, D)
        cos = torch.nn.functional.cosine_similarity(gen, gt[:, None], dim=-1)  # (B, k, NB)
        unit = torch.nn.functional.normalize(gen, dim=-1)
        gram = torch.einsum("bind,bjnd->bnij", unit, unit)
        diversity = (gram.sum((-1, -2)) - gram.diagonal(dim1=-2, dim2=-1).sum(-1)) / max(k * (k - 1), 1)  # (B, NB)
        cfm = (gen.mean(1) - gt).square().sum(-1)  # (B, NB)
        truth = batch.input_ids[:, layout.target_positions(device)]  # (B, NB, G)
        token_match = (samples.tokens == truth[:, None]).float().mean((1, 3))  # (B, NB)
        valid = masks.block_valid.expand(batch.input_ids.shape[0], -1)
        for b in range(batch.input_ids.shape[0]):
            v = valid[b]
            if not v.any():
                continue
            records.append(
                {
                    "chunk": lo + b,
                    "blocks": int(v.sum()),
                    "alignment": float(cos[b][:, v].mean()),
                    "alignment_best_of_k": float(cos[b][:, v].max(0).values.mean()),
                    "diversity": float(diversity[b][v].mean()),
                    "cfm_loss": float(cfm[b][v].mean()),
                    "token_match": float(token_match[b][v].mean()),
                }
            )
            block_alignment += cos[b][:, v].mean(0).tolist()
    return records, block_alignment


def summarise_feature_matching(records: list[dict]) -> dict:
    keys = ("alignment", "alignment_best_of_k", "diversity", "cfm_loss", "token_match")
    total = sum(r["blocks"] for r in records)
    return {f"fm_{k}": sum(r[k] * r["blocks"] for r in records) / total for k in keys} if total else {}
