import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from components.engine.layout import StridedLayout


def test_paper_qa_layout():
    layout = StridedLayout(seq_len=1024, context=8, stride=8, block_len=8)
    assert layout.num_blocks == 127
    assert layout.total_len == 2040
    assert layout.anchors()[:3].tolist() == [8, 16, 24]
    assert layout.target_positions()[-1].tolist() == list(range(1016, 1024))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    context=st.integers(1, 40),
    stride=st.integers(1, 16),
    block_len=st.integers(1, 16),
    num_blocks=st.integers(1, 50),
)
def test_valid_layouts_tile_the_chunk(context, stride, block_len, num_blocks):
    seq_len = context + block_len + stride * (num_blocks - 1)
    layout = StridedLayout(seq_len=seq_len, context=context, stride=stride, block_len=block_len)
    assert layout.num_blocks == num_blocks
    anchors = layout.anchors()
    assert anchors[0] == context and anchors[-1] + block_len == seq_len
    assert torch.all(anchors[1:] - anchors[:-1] == stride)


def test_non_tiling_length_names_the_nearest_valid_lengths():
    with pytest.raises(ValueError, match=r"nearest valid seq_len: 1024 or 1032"):
        StridedLayout(seq_len=1027, context=8, stride=8, block_len=8)


def test_block_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match=r"block_len G=12 does not fit.*use block_len <= 8 or seq_len >= 16"):
        StridedLayout(seq_len=12, context=4, stride=2, block_len=12)


@pytest.mark.parametrize("field", ["seq_len", "context", "stride", "block_len"])
def test_non_positive_values_are_refused(field):
    values = dict(seq_len=24, context=8, stride=8, block_len=8) | {field: 0}
    with pytest.raises(ValueError, match=f"{field}=0 must be a positive integer"):
        StridedLayout(**values)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="blocks"):
        StridedLayout(seq_len=24, context=8, stride=8, block_len=8, blocks=3)


def test_step_major_round_trip():
    layout = StridedLayout(seq_len=17, context=3, stride=2, block_len=4)  # NB = 6, overlapping blocks
    x = torch.arange(2 * 3 * layout.num_blocks * 4).view(2, 3, layout.num_blocks, 4)
    step = layout.to_step_major(x)
    assert step.shape == (2, 3, 24)
    # token g of block k sits at g * NB + k
    assert step[1, 2, 2 * layout.num_blocks + 5] == x[1, 2, 5, 2]
    assert torch.equal(layout.to_block_major(step), x)
    feats = torch.randn(2, layout.gen_len, 7)
    assert torch.equal(layout.to_step_major(layout.to_block_major(feats, dim=1), dim=1), feats)
