"""The content-addressed cache of ground-truth block features (computed once by the frozen feature network).

Layout on disk: ``index.json`` plus safetensors shards ``<split>-00000.safetensors`` holding ``features`` of shape
(chunks, NB, D) in fp32. The cache key hashes the feature network's weights, each split's token content and the
feature settings (layers, pooling, normalisation, L/C/s/G, document masking, dtype). A reader states the key it
expects; a cache built for anything else is refused with the parts that differ, never used silently. The index also
records each shard's sha256, checked whenever the shard is read: a file changed or damaged on disk is refused by name,
with how to restore it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from components.data.atomic_io import atomic_directory
from components.data.chunk_store import ChunkSplit
from components.data.hashing import sha256_file
from components.data.model_loading import load_model, weights_sha256
from components.engine.causal_lm import compute_dtype, model_device
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks
from components.method.config import FeaturesConfig
from components.method.feature_network import FeatureNetwork

INDEX = "index.json"
REPAIR = "Restore it from the DVC cache (`dvc checkout features`) or rebuild it (`dvc repro features`)."


class FeatureCacheError(ValueError):
    """The cache is missing, damaged, or was built for other inputs."""


@dataclass(frozen=True)
class FeatureCacheKey:
    network_sha256: str
    data_sha256: dict[str, str]  # split -> ChunkSplit.content_hash()
    settings: dict

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def differences(self, built: FeatureCacheKey) -> list[str]:
        """What differs between this (requested) key and the key a cache was built with. Only the splits requested
        here count: a cache holding more splits serves a reader that needs fewer."""
        diffs = []
        if self.network_sha256 != built.network_sha256:
            diffs.append(
                f"feature network weights ({built.network_sha256[:12]} cached, {self.network_sha256[:12]} now)"
            )
        for split in sorted(self.data_sha256):
            now, then = self.data_sha256[split], built.data_sha256.get(split)
            if now != then:
                diffs.append(f"data of split {split!r} ({(then or 'absent')[:12]} cached, {now[:12]} now)")
        for name in sorted(set(self.settings) | set(built.settings)):
            if self.settings.get(name) != built.settings.get(name):
                diffs.append(f"{name} ({built.settings.get(name)!r} cached, {self.settings.get(name)!r} now)")
        return diffs


def feature_settings(network: FeatureNetwork, layout: StridedLayout, document_masking: bool) -> dict:
    return {
        **network.config.model_dump(),
        "resolved_layers": network.layers,
        "seq_len": layout.seq_len,
        "context": layout.context,
        "stride": layout.stride,
        "block_len": layout.block_len,
        "document_masking": document_masking,
        "dtype": str(next(network.model.parameters()).dtype).removeprefix("torch."),
    }


def build_feature_cache(
    out_dir: str | Path,
    network: FeatureNetwork,
    splits: dict[str, ChunkSplit],
    layout: StridedLayout,
    key: FeatureCacheKey,
    *,
    document_masking: bool = False,
    batch_size: int = 8,
    shard_size: int = 256,
) -> dict:
    """Compute and store the ground-truth features of every chunk of ``splits``; returns timing figures."""
    index: dict = {"key": asdict(key), "digest": key.digest(), "splits": {}}
    stats: dict = {}
    with atomic_directory(out_dir) as tmp:
        for split, chunks in splits.items():
            if len(chunks) and chunks.seq_len != layout.seq_len:
                raise FeatureCacheError(
                    f"split {split!r} has chunks of {chunks.seq_len} tokens but layout seq_len is {layout.seq_len}"
                )
            start = time.perf_counter()
            shards = _write_shards(tmp, split, chunks, network, layout, document_masking, batch_size, shard_size)
            seconds = time.perf_counter() - start
            shape = list(load_file(str(tmp / shards[0]["file"]))["features"].shape[1:]) if shards else []
            index["splits"][split] = {"chunks": len(chunks), "feature_shape": shape, "shards": shards}
            stats[split] = {
                "chunks": len(chunks),
                "seconds": round(seconds, 3),
                "chunks_per_s": round(len(chunks) / seconds, 3) if len(chunks) and seconds > 0 else None,
            }
        (tmp / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return stats


def _write_shards(
    folder: Path,
    split: str,
    chunks: ChunkSplit,
    network: FeatureNetwork,
    layout: StridedLayout,
    document_masking: bool,
    batch_size: int,
    shard_size: int,
) -> list[dict]:
    """One split's features in shards of about ``shard_size`` chunks; each shard's entry holds its content hash."""
    device, dtype = model_device(network.model), compute_dtype(network.model)
    shards, buffer = [], []
    bar = tqdm(total=len(chunks), desc=f"features {split}", unit="chunk", disable=len(chunks) == 0)
    for lo in range(0, len(chunks), batch_size):
        batch = chunks.batch(slice(lo, lo + batch_size)).to(device)
        masks = build_strided_masks(
            layout, doc_ids=batch.doc_ids if document_masking else None, dtype=dtype, device=device
        )
        buffer.append(network.ground_truth_features(batch.input_ids, masks).float().cpu())
        bar.update(batch.input_ids.shape[0])
        if sum(len(b) for b in buffer) >= shard_size or lo + batch_size >= len(chunks):
            name = f"{split}-{len(shards):05d}.safetensors"
            block = torch.cat(buffer)
            save_file({"features": block.contiguous()}, str(folder / name))
            shards.append({"file": name, "chunks": len(block), "sha256": sha256_file(folder / name)})
            buffer = []
    bar.close()
    return shards


class FeatureCache:
    """Read access to a built cache whose key matched the request."""

    def __init__(self, directory: Path, index: dict):
        self.directory = directory
        self.index = index
        self._loaded: dict[str, torch.Tensor] = {}

    @property
    def digest(self) -> str:
        """The digest of the key the cache was built with."""
        return self.index["digest"]

    @classmethod
    def open(cls, directory: str | Path, expected: FeatureCacheKey) -> FeatureCache:
        directory = Path(directory)
        path = directory / INDEX
        if not path.exists():
            raise FeatureCacheError(f"no feature cache at {directory}: build it with `dvc repro features`")
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
            built = FeatureCacheKey(**index["key"])
        except (ValueError, KeyError, TypeError) as err:
            raise FeatureCacheError(f"{path} cannot be read ({err}). {REPAIR}") from None
        diffs = "; ".join(expected.differences(built))
        if diffs:
            raise FeatureCacheError(
                f"the feature cache at {directory} was built for other inputs: {diffs}. "
                "Rebuild it (`dvc repro features`) instead of using it."
            )
        return cls(directory, index)

    def splits(self) -> list[str]:
        return list(self.index["splits"])

    def features(self, split: str, indices: torch.Tensor | list[int] | slice | None = None) -> torch.Tensor:
        """Ground-truth features (chunks, NB, D) of ``split`` (all chunks, or those at ``indices``)."""
        if split not in self.index["splits"]:
            raise FeatureCacheError(f"split {split!r} is not in the feature cache (has {self.splits()})")
        if split not in self._loaded:
            shards = [self._load_shard(shard) for shard in self.index["splits"][split]["shards"]]
            self._loaded[split] = torch.cat(shards) if shards else torch.zeros(0)
        all_features = self._loaded[split]
        return all_features if indices is None else all_features[indices]

    def _load_shard(self, shard: dict) -> torch.Tensor:
        """A shard's features, after checking its bytes against the hash the index recorded when it was built."""
        path = self.directory / shard["file"]
        if not path.exists():
            raise FeatureCacheError(f"{path} is missing from the feature cache. {REPAIR}")
        if "sha256" not in shard:
            raise FeatureCacheError(f"{self.directory / INDEX} records no content hashes (an older cache). {REPAIR}")
        if sha256_file(path) != shard["sha256"]:
            raise FeatureCacheError(
                f"{path} does not match the hash recorded in {self.directory / INDEX}: it was changed or damaged "
                f"after the cache was built. {REPAIR}"
            )
        try:
            features = load_file(str(path))["features"]
        except Exception as err:  # safetensors raises its own error type for an unreadable file
            raise FeatureCacheError(f"{path} cannot be read ({err}). {REPAIR}") from None
        if features.shape[0] != shard["chunks"]:
            raise FeatureCacheError(f"{path} holds {features.shape[0]} chunks, the index {shard['chunks']}. {REPAIR}")
        return features


def make_cache_key(
    network_sha256: str,
    network: FeatureNetwork,
    splits: dict[str, ChunkSplit],
    layout: StridedLayout,
    document_masking: bool,
) -> FeatureCacheKey:
    """The key a cache must carry to serve these chunks with this network and these settings."""
    return FeatureCacheKey(
        network_sha256=network_sha256,
        data_sha256={split: chunks.content_hash() for split, chunks in splits.items()},
        settings=feature_settings(network, layout, document_masking),
    )


def load_feature_network(
    config: FeaturesConfig, base_dir: str | Path, device: str | torch.device
) -> tuple[FeatureNetwork, str]:
    """The frozen feature network ``config.network`` names ('base': the base model in ``base_dir``), and the sha256
    of its weights (part of every cache key)."""
    network_dir = str(base_dir) if config.network == "base" else config.network
    network = FeatureNetwork(load_model(network_dir, config.dtype, device), config.feature_config())
    return network, weights_sha256(network_dir)
