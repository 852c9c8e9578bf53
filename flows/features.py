"""Stage ``features``: the frozen feature network's ground-truth block features of every cached split."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from components.data.atomic_io import atomic_write_json
from components.data.chunk_store import load_split
from components.method.feature_cache import build_feature_cache, load_feature_network, make_cache_key
from components.params.loading import load_params
from components.project.inputs import check_inside_inputs
from flows.stage_cli import stage_main


def run(
    params_path: str = "params.yaml",
    data_dir: str = "data",
    model_dir: str = "models/base",
    cache_dir: str = "features",
    metrics_path: str = "metrics/features.json",
) -> dict:
    params = load_params(params_path)
    check_inside_inputs(params, Path.cwd())  # DVC must see a local input change
    layout, masking = params.strided_layout(), params.layout.document_masking
    start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    network, sha = load_feature_network(params.features, model_dir, device)
    splits = {split: load_split(data_dir, split) for split in params.features.splits}
    key = make_cache_key(sha, network, splits, layout, masking)
    print(f"features: network {params.features.network!r}, layers {network.layers}, {params.features.pooling} pooling")
    stats = build_feature_cache(
        cache_dir, network, splits, layout, key, document_masking=masking, batch_size=params.features.batch_size
    )
    metrics = {"key": key.digest(), "splits": stats, "seconds": round(time.perf_counter() - start, 2)}
    atomic_write_json(metrics_path, metrics)
    print(
        f"feature cache {cache_dir} ready in {metrics['seconds']} s: "
        + ", ".join(f"{s} {v['chunks']} chunks" for s, v in stats.items())
    )
    return metrics


def main(argv: list[str] | None = None) -> None:
    stage_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
