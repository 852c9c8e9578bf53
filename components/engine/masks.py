"""Attention masks, position ids and validity masks for strided block-parallel sampling.

Everything is built with broadcasting, never with Python loops over blocks or steps. The model sees float additive
masks (0 where attention is allowed, the dtype's minimum elsewhere): HF eager attention *adds* a boolean mask to
the scores, which silently gives wrong results, while a float mask is right for every attention backend.

Two optional masks change what counts:
- document masking (``doc_ids``): packed documents never see each other; position ids restart per document; a block
  counts only if its ground truth stays in the document of its context; CE skips targets that start a document.
- QA masking (``qa_mask``, True on answer tokens): a block counts only if its whole ground truth is answer tokens;
  CE counts only answer targets.
Without them every tensor has a batch dimension of 1 and broadcasts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from components.engine.layout import StridedLayout


@dataclass(frozen=True)
class StridedMasks:
    """All masks of one batch of chunks. Leading dim is B (or 1 when identical for every chunk)."""

    layout: StridedLayout
    prompt_mask: torch.Tensor  # (B|1, 1, L, L) additive: plain (or per-document) causal
    prompt_positions: torch.Tensor  # (B|1, L)
    gen_mask: torch.Tensor  # (B|1, 1, NB*G, L + NB*G) additive, keys = chunk then generated segment
    gen_positions: torch.Tensor  # (B|1, NB*G), step-major
    block_valid: torch.Tensor  # (B|1, NB) bool: the block takes part in rewards and the policy gradient
    target_mask: torch.Tensor  # (B|1, L-1) bool: teacher-forced target x[t+1] counts in CE

    def per_sample(self, n: int) -> StridedMasks:
        """The same masks with each chunk's rows repeated for its n samples (rows b*n .. b*n+n-1)."""
        tensors = {f.name: repeat_rows(getattr(self, f.name), n) for f in fields(self) if f.name != "layout"}
        return replace(self, **tensors)

    def decode_step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask (B|1, 1, NB, L+(step+1)*NB) and positions (B|1, NB) for feeding the tokens of one step."""
        nb, L = self.layout.num_blocks, self.layout.seq_len
        rows = slice(step * nb, (step + 1) * nb)
        return self.gen_mask[:, :, rows, : L + (step + 1) * nb], self.gen_positions[:, rows]

    def dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's single-sequence mask (B|1, 1, S, S) and positions (B|1, S) over chunk + generated."""
        b = max(self.prompt_mask.shape[0], self.gen_mask.shape[0])
        prompt_rows = torch.nn.functional.pad(self.prompt_mask, (0, self.layout.gen_len), value=self.min_value)
        mask = torch.cat([prompt_rows.expand(b, -1, -1, -1), self.gen_mask.expand(b, -1, -1, -1)], dim=2)
        positions = torch.cat([self.prompt_positions.expand(b, -1), self.gen_positions.expand(b, -1)], dim=1)
        return mask, positions

    @property
    def min_value(self) -> float:
        return torch.finfo(self.prompt_mask.dtype).min


def additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool 'may attend' -> float additive mask in the model's dtype."""
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def document_segments(doc_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment index and segment start of every token. A segment is a contiguous run of equal doc ids."""
    L = doc_ids.shape[1]
    idx = torch.arange(L, device=doc_ids.device).expand_as(doc_ids)
    starts = torch.ones_like(doc_ids, dtype=torch.bool)
    starts[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    segment = starts.long().cumsum(dim=1)
    start_of = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return segment, start_of


def build_strided_masks(
    layout: StridedLayout,
    *,
    doc_ids: torch.Tensor | None = None,
    qa_mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> StridedMasks:
    """Build every mask of a batch. ``doc_ids``/``qa_mask`` are (B, L); pass neither for plain causal chunks."""
    L, G, NB = layout.seq_len, layout.block_len, layout.num_blocks
    for name, t in (("doc_ids", doc_ids), ("qa_mask", qa_mask)):
        if t is not None and (t.dim() != 2 or t.shape[1] != L):
            raise ValueError(f"{name} must have shape (B, {L}), got {tuple(t.shape)}")
    if doc_ids is not None:
        device = doc_ids.device
    elif qa_mask is not None:
        device = qa_mask.device
    pos = torch.arange(L, device=device)
    anchors = layout.anchors(device)  # (NB,)
    steps = torch.arange(G, device=device)

    if doc_ids is None:
        segment = torch.zeros(1, L, dtype=torch.long, device=device)
        start_of = torch.zeros(1, L, dtype=torch.long, device=device)
    else:
        segment, start_of = document_segments(doc_ids)
    prompt_positions = pos[None, :] - start_of  # restarts at every document

    # Chunk rows: causal within the same segment.
    causal = pos[:, None] >= pos[None, :]
    prompt_allowed = causal[None] & (segment[:, :, None] == segment[:, None, :])

    gen_allowed = _generated_attention(layout, pos, start_of)
    gen_positions = prompt_positions[:, anchors - 1][:, None, :] + 1 + steps[None, :, None]  # (B|1, G, NB)
    gen_positions = gen_positions.reshape(-1, G * NB)
    block_valid, target_mask = _counted(layout, segment if doc_ids is not None else None, qa_mask, pos.device)

    return StridedMasks(
        layout=layout,
        prompt_mask=additive(prompt_allowed[:, None], dtype),
        prompt_positions=prompt_positions,
        gen_mask=additive(gen_allowed[:, None], dtype),
        gen_positions=gen_positions,
        block_valid=block_valid,
        target_mask=target_mask,
    )


def _generated_attention(layout: StridedLayout, pos: torch.Tensor, start_of: torch.Tensor) -> torch.Tensor:
    """(B|1, NB*G, L + NB*G) bool: generated token (g, k) sees the chunk from the start of its context's document up
    to a_k, its own block's earlier tokens, and itself."""
    G, NB, device = layout.block_len, layout.num_blocks, pos.device
    anchors, steps = layout.anchors(device), torch.arange(G, device=device)
    ctx_start = start_of[:, anchors - 1]  # (B|1, NB)
    to_chunk = (pos[None, None, :] < anchors[None, :, None]) & (pos[None, None, :] >= ctx_start[:, :, None])
    to_chunk = to_chunk[:, None].expand(-1, G, -1, -1).reshape(-1, G * NB, pos.shape[0])
    same_block = torch.eye(NB, dtype=torch.bool, device=device)
    not_later = steps[:, None] >= steps[None, :]
    to_gen = (not_later[:, None, :, None] & same_block[None, :, None, :]).reshape(G * NB, G * NB)
    return torch.cat([to_chunk, to_gen[None].expand(to_chunk.shape[0], -1, -1)], dim=2)


def _counted(
    layout: StridedLayout, segment: torch.Tensor | None, qa_mask: torch.Tensor | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which blocks take part in rewards, (B|1, NB), and which teacher-forced targets count in CE, (B|1, L-1):
    with document masking (``segment``) blocks within one document and targets that do not start one; with QA
    masking blocks and targets of answer tokens only."""
    L, G, NB = layout.seq_len, layout.block_len, layout.num_blocks
    anchors = layout.anchors(device)
    block_valid = torch.ones(1, NB, dtype=torch.bool, device=device)
    target_mask = torch.ones(1, L - 1, dtype=torch.bool, device=device)
    if segment is not None:
        block_valid = block_valid & (segment[:, anchors + G - 1] == segment[:, anchors - 1])
        target_mask = target_mask & (segment[:, 1:] == segment[:, :-1])
    if qa_mask is not None:
        qa = qa_mask.bool()
        counts = torch.nn.functional.pad(qa.long().cumsum(dim=1), (1, 0))
        block_valid = block_valid & ((counts[:, anchors + G] - counts[:, anchors]) == G)
        target_mask = target_mask & qa[:, 1:]
    return block_valid, target_mask


def answer_blocks(layout: StridedLayout, qa_mask: torch.Tensor) -> torch.Tensor:
    """(B, NB) bool: the blocks whose G ground-truth tokens are all answer tokens (the ones QA masking rewards)."""
    return _counted(layout, None, qa_mask, qa_mask.device)[0]


def repeat_rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """Give each of the n samples of a chunk its chunk's row; rows shared by all chunks (dim 0 == 1) stay."""
    return t if t.shape[0] == 1 else t.repeat_interleave(n, dim=0)
