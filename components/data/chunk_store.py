"""Packed token chunks on disk: one safetensors file per split with input_ids, doc_ids and qa_mask, each (N, L)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


@dataclass(frozen=True)
class ChunkBatch:
    """Packed token chunks (B, L), with optional document ids and answer-token mask of the same shape."""

    input_ids: torch.Tensor
    doc_ids: torch.Tensor | None = None
    qa_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("doc_ids", "qa_mask"):
            t = getattr(self, name)
            if t is not None and t.shape != self.input_ids.shape:
                raise ValueError(f"{name} shape {tuple(t.shape)} != input_ids shape {tuple(self.input_ids.shape)}")

    def to(self, device: torch.device | str) -> ChunkBatch:
        moved = {k: None if v is None else v.to(device) for k, v in self.__dict__.items()}
        return replace(self, **moved)


@dataclass(frozen=True)
class ChunkSplit:
    input_ids: torch.Tensor  # (N, L) int32 token ids
    doc_ids: torch.Tensor  # (N, L) int32 document index of every token (within the split)
    qa_mask: torch.Tensor  # (N, L) bool: answer tokens

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def seq_len(self) -> int:
        return self.input_ids.shape[1]

    def batch(self, indices: torch.Tensor | list[int] | slice) -> ChunkBatch:
        """Chunks as a model-ready batch (int64 ids)."""
        return ChunkBatch(self.input_ids[indices].long(), self.doc_ids[indices].long(), self.qa_mask[indices].clone())

    def content_hash(self) -> str:
        """Identity of the token content (what cached features depend on)."""
        digest = hashlib.sha256()
        for t in (self.input_ids, self.doc_ids):
            digest.update(str(tuple(t.shape)).encode())
            digest.update(t.contiguous().numpy().tobytes())
        return digest.hexdigest()


def save_split(path: Path, split: ChunkSplit) -> None:
    save_file(
        {"input_ids": split.input_ids, "doc_ids": split.doc_ids, "qa_mask": split.qa_mask.to(torch.uint8)},
        str(path),
    )


def load_split(data_dir: str | Path, split: str) -> ChunkSplit:
    path = Path(data_dir) / f"{split}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the data first (`dvc repro prepare`)")
    try:
        t = load_file(str(path))
        return ChunkSplit(t["input_ids"], t["doc_ids"], t["qa_mask"].bool())
    except Exception as err:  # safetensors raises its own error type for an unreadable file
        raise ValueError(
            f"{path} cannot be read ({err}): restore it from the DVC cache (`dvc checkout data`) or rebuild it "
            "(`dvc repro prepare`)"
        ) from None
