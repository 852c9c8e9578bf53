"""Geometry of strided block-parallel sampling (docs/method.md §2).

A chunk of ``seq_len`` (L) tokens is cut into ``num_blocks`` (NB) overlapping targets: block k starts at the
anchor ``a_k = context + k * stride``, conditions on the whole prefix ``x[0:a_k]`` and generates ``block_len`` (G)
tokens whose ground truth is ``x[a_k : a_k + G]``.

Generated tokens are laid out *step-major*: token g of block k has index ``g * NB + k`` in the generated segment
(position ``L + g * NB + k`` of the full sequence), so that every sampling step appends one contiguous slab of NB
tokens to the KV cache. Its position id is ``a_k + g``.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from components.settings import Settings


class BlockGeometry(Settings):
    """Context offset C, stride s and block length G: the layout of blocks, whatever the chunk length."""

    context: int = Field(8, description="C: tokens before the first block")
    stride: int = Field(8, description="s: distance between block anchors")
    block_len: int = Field(8, description="G: tokens generated per block")

    @model_validator(mode="after")
    def _check_positive(self) -> BlockGeometry:
        for name in ("context", "stride", "block_len"):
            _positive(name, getattr(self, name))
        return self


class StridedLayout(BlockGeometry):
    """Chunk length L with C, s and G, validated together."""

    seq_len: int

    @model_validator(mode="after")
    def _check_tiling(self) -> StridedLayout:
        _positive("seq_len", self.seq_len)
        L, C, s, G = self.seq_len, self.context, self.stride, self.block_len
        if C + G > L:
            raise ValueError(
                f"block_len G={G} does not fit: context C={C} + G={G} = {C + G} exceeds seq_len L={L}; "
                f"use block_len <= {L - C} or seq_len >= {C + G}"
            )
        rest = (L - G - C) % s
        if rest:
            raise ValueError(
                f"seq_len L={L} does not tile: (L - G - C) = ({L} - {G} - {C}) = {L - G - C} is not a multiple of "
                f"stride s={s}; nearest valid seq_len: {L - rest} or {L + s - rest} "
                f"(or pick a stride that divides {L - G - C})"
            )
        return self

    @property
    def num_blocks(self) -> int:
        """NB = (L - G - C) / s + 1."""
        return (self.seq_len - self.block_len - self.context) // self.stride + 1

    @property
    def gen_len(self) -> int:
        """Generated tokens per sample: NB * G."""
        return self.num_blocks * self.block_len

    @property
    def total_len(self) -> int:
        """Length of chunk plus generated segment, S = L + NB * G."""
        return self.seq_len + self.gen_len

    def anchors(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Anchor a_k of every block, shape (NB,)."""
        return self.context + self.stride * torch.arange(self.num_blocks, device=device)

    def target_positions(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Chunk positions of every block's ground-truth tokens, shape (NB, G): ``a_k + g``."""
        return self.anchors(device)[:, None] + torch.arange(self.block_len, device=device)[None, :]

    def to_step_major(self, block_major: torch.Tensor, dim: int = -2) -> torch.Tensor:
        """(..., NB, G, ...) with NB at ``dim`` -> (..., G * NB, ...), the order of the generated segment."""
        dim = dim % block_major.dim()
        nb, g = self.num_blocks, self.block_len
        if tuple(block_major.shape[dim : dim + 2]) != (nb, g):
            raise ValueError(f"expected (NB={nb}, G={g}) at dim {dim}, got shape {tuple(block_major.shape)}")
        moved = block_major.transpose(dim, dim + 1)
        return moved.reshape(*moved.shape[:dim], g * nb, *moved.shape[dim + 2 :])

    def to_block_major(self, step_major: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """(..., G * NB, ...) with the generated axis at ``dim`` -> (..., NB, G, ...)."""
        dim = dim % step_major.dim()
        nb, g = self.num_blocks, self.block_len
        if step_major.shape[dim] != g * nb:
            raise ValueError(f"expected {g * nb} generated tokens at dim {dim}, got shape {tuple(step_major.shape)}")
        split = step_major.reshape(*step_major.shape[:dim], g, nb, *step_major.shape[dim + 1 :])
        return split.transpose(dim, dim + 1)


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name}={value} must be a positive integer")
