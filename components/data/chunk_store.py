"""Packed token chunks on disk: one safetensors file per split with input_ids, doc_ids and qa_mask, each (N, L)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from components.method.ebft_step import ChunkBatch


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
    t = load_file(str(path))
    return ChunkSplit(t["input_ids"], t["doc_ids"], t["qa_mask"].bool())
