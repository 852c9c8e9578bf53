"""Which chunks a training step uses, and the random generators its sampling uses: both are functions of
(seed, step) alone, so a resumed run, a different micro-batch size or a different process count sees the same
chunks and draws the same samples."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def _seed_of(*parts: object) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def epoch_order(n_chunks: int, seed: int, epoch: int) -> np.ndarray:
    """A fixed permutation of the chunk indices for one pass over the data."""
    return np.random.default_rng(_seed_of("order", seed, epoch)).permutation(n_chunks)


def step_chunks(step: int, chunks_per_step: int, n_chunks: int, seed: int) -> np.ndarray:
    """Global chunk indices of ``step``: consecutive positions of the concatenated epoch permutations."""
    if n_chunks == 0:
        raise ValueError("the training split has no chunks: raise data.max_chunks.train or add data")
    positions = np.arange(step * chunks_per_step, (step + 1) * chunks_per_step)
    epochs, offsets = np.divmod(positions, n_chunks)
    orders = {int(e): epoch_order(n_chunks, seed, int(e)) for e in np.unique(epochs)}
    return np.array([orders[int(e)][o] for e, o in zip(epochs, offsets, strict=True)])


def process_share(indices: np.ndarray, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's contiguous share of a step's chunks, and their positions in the step's global batch."""
    per = len(indices) // world
    positions = np.arange(rank * per, (rank + 1) * per)
    return indices[positions], positions


def chunk_generators(seed: int, step: int, positions: np.ndarray, device: str | torch.device = "cpu"):
    """One generator per chunk, keyed by its position in the step's global batch."""
    return [torch.Generator(device=device).manual_seed(_seed_of("sample", seed, step, int(p))) for p in positions]
