"""The SFT baseline's step: teacher-forced cross-entropy on exactly the chunks EBFT trains on.

Same masks as EBFT's CE term: per-document attention with document masking, answer tokens only with QA masking.
"""

from __future__ import annotations

import torch

from components.data.chunk_store import ChunkBatch
from components.engine.causal_lm import compute_dtype
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks
from components.engine.policy import as_policy_module, language_model
from components.method.loss import masked_mean


class SFTStep:
    def __init__(
        self,
        policy: torch.nn.Module,
        layout: StridedLayout,
        *,
        document_masking: bool = False,
        qa_masking: bool = False,
        chunk_size: int = 1024,
    ):
        self.policy = as_policy_module(policy)
        self.layout = layout
        self.document_masking, self.qa_masking, self.chunk_size = document_masking, qa_masking, chunk_size

    def loss(self, batch: ChunkBatch) -> tuple[torch.Tensor, dict[str, float]]:
        masks = build_strided_masks(
            self.layout,
            doc_ids=batch.doc_ids if self.document_masking else None,
            qa_mask=batch.qa_mask if self.qa_masking else None,
            dtype=compute_dtype(language_model(self.policy)),
            device=batch.input_ids.device,
        )
        logp = self.policy(batch.input_ids, masks, chunk_size=self.chunk_size)
        ce = masked_mean(-logp, masks.target_mask)
        return ce, {"loss": ce.item(), "ce": ce.item()}
