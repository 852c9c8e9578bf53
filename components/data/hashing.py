"""Content hashes of files, read in blocks (weights files are large): the identities the data card, the feature
cache, checkpoints and lineage tags compare."""

from __future__ import annotations

import hashlib
from pathlib import Path


def update_with_file(digest, path: str | Path) -> None:
    """Feed the bytes of ``path`` into ``digest`` (a hashlib object)."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    update_with_file(digest, path)
    return digest.hexdigest()
