"""The vectorised masks against the rules of docs/method.md §2 written out as plain loops."""

import random

import pytest
import torch

from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks, document_segments


def random_layout(rng: random.Random) -> StridedLayout:
    c, s, g, nb = rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 5), rng.randint(1, 6)
    return StridedLayout(seq_len=c + g + s * (nb - 1), context=c, stride=s, block_len=g)


def random_doc_ids(batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(batch, length, generator=gen) < 0.2).long().cumsum(dim=1)


def loop_masks(layout: StridedLayout, doc: list[int] | None):
    """Allowed-attention matrix over the full sequence and position ids, one rule at a time."""
    L, NB, G = layout.seq_len, layout.num_blocks, layout.block_len
    S = layout.total_len
    doc = doc or [0] * L
    start = [next(j for j in range(i + 1) if all(doc[t] == doc[i] for t in range(j, i + 1))) for i in range(L)]
    allowed = torch.zeros(S, S, dtype=torch.bool)
    positions = [0] * S
    for i in range(L):
        positions[i] = i - start[i]
        for j in range(i + 1):
            allowed[i, j] = j >= start[i]
    for g in range(G):
        for k in range(NB):
            a = layout.context + k * layout.stride
            q = L + g * NB + k
            positions[q] = positions[a - 1] + 1 + g
            for j in range(start[a - 1], a):
                allowed[q, j] = True
            for g2 in range(g + 1):
                allowed[q, L + g2 * NB + k] = True
    return allowed, torch.tensor(positions)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("with_docs", [False, True])
def test_dense_mask_matches_the_rules(seed, with_docs):
    rng = random.Random(seed)
    layout = random_layout(rng)
    gen = torch.Generator().manual_seed(seed)
    doc_ids = random_doc_ids(2, layout.seq_len, gen) if with_docs else None
    masks = build_strided_masks(layout, doc_ids=doc_ids)
    dense, positions = masks.dense()
    for b in range(dense.shape[0]):
        expected, expected_pos = loop_masks(layout, None if doc_ids is None else doc_ids[b].tolist())
        assert torch.equal(dense[b, 0] == 0, expected)
        assert torch.equal(positions[b], expected_pos)


def test_masks_are_float_additive_in_the_requested_dtype():
    layout = StridedLayout(seq_len=12, context=2, stride=2, block_len=2)
    masks = build_strided_masks(layout, dtype=torch.bfloat16)
    assert masks.prompt_mask.dtype == torch.bfloat16 and masks.gen_mask.dtype == torch.bfloat16
    assert set(masks.gen_mask.unique().tolist()) == {0.0, torch.finfo(torch.bfloat16).min}


def test_decode_step_is_a_slice_of_the_generated_mask():
    layout = StridedLayout(seq_len=14, context=2, stride=3, block_len=3)
    masks = build_strided_masks(layout)
    NB, L = layout.num_blocks, layout.seq_len
    for g in range(layout.block_len):
        mask, pos = masks.decode_step(g)
        assert mask.shape[-2:] == (NB, L + (g + 1) * NB)
        # nothing in the step attends to a later step's keys (they are not in the cache yet)
        assert torch.all(masks.gen_mask[0, 0, g * NB : (g + 1) * NB, L + (g + 1) * NB :] != 0)
        assert torch.equal(pos[0], layout.anchors() + g)


def test_document_segments_and_restarting_positions():
    doc_ids = torch.tensor([[5, 5, 5, 2, 2, 7, 7, 7, 7, 5]])
    segment, start = document_segments(doc_ids)
    assert segment.tolist() == [[1, 1, 1, 2, 2, 3, 3, 3, 3, 4]]  # a reused id after another doc is a new segment
    assert start.tolist() == [[0, 0, 0, 3, 3, 5, 5, 5, 5, 9]]
    layout = StridedLayout(seq_len=10, context=2, stride=2, block_len=2)
    masks = build_strided_masks(layout, doc_ids=doc_ids)
    assert masks.prompt_positions.tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3, 0]]


def test_block_validity_and_targets_with_documents():
    doc_ids = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 1, 1]])
    layout = StridedLayout(seq_len=10, context=2, stride=2, block_len=2)  # anchors 2, 4, 6, 8
    masks = build_strided_masks(layout, doc_ids=doc_ids)
    # block at anchor 4 predicts doc 1 from the end of doc 0: not valid
    assert masks.block_valid.tolist() == [[True, False, True, True]]
    assert masks.target_mask[0, 3].item() is False and masks.target_mask.sum().item() == 8


def test_block_validity_and_targets_with_answers():
    qa_mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 0, 1, 1]], dtype=torch.bool)
    layout = StridedLayout(seq_len=10, context=2, stride=2, block_len=2)  # spans [2,4) [4,6) [6,8) [8,10)
    masks = build_strided_masks(layout, qa_mask=qa_mask)
    assert masks.block_valid.tolist() == [[False, True, False, True]]
    assert masks.target_mask.tolist() == [qa_mask[0, 1:].tolist()]


def test_bad_mask_shapes_are_refused():
    layout = StridedLayout(seq_len=10, context=2, stride=2, block_len=2)
    with pytest.raises(ValueError, match=r"doc_ids must have shape \(B, 10\)"):
        build_strided_masks(layout, doc_ids=torch.zeros(2, 9, dtype=torch.long))
