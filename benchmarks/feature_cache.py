"""The feature cache, measured: how fast it is built, and what reading it saves an EBFT rollout.

    python -m benchmarks.feature_cache --out benchmarks/results/feature_cache_cpu.json

Build: ground-truth features of ``--chunks`` chunks with the frozen feature network (chunks per second).
Side by side, on the same batch and seed: ``EBFTStep.rollout`` computing ground-truth features itself versus
reading them from the cache (median of ``--repeats`` runs each, alternating).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import environment, smollm2_shaped_model, write_json
from components.data.chunk_store import ChunkSplit
from components.engine.config import SamplingConfig
from components.engine.layout import StridedLayout
from components.method.config import EBFTStepConfig, FeatureConfig
from components.method.ebft_step import EBFTStep
from components.method.feature_cache import FeatureCache, build_feature_cache, make_cache_key
from components.method.feature_network import FeatureNetwork


def time_rollouts(step: EBFTStep, split: ChunkSplit, cached: torch.Tensor, args) -> dict[str, list[float]]:
    """Rollout wall times with the ground-truth features computed by the feature network and read from the cache."""
    batch = split.batch(slice(0, args.batch)).to(args.device)
    timings: dict[str, list[float]] = {
        k: [] for k in ("computed", "from_cache", "computed_features_s", "from_cache_features_s")
    }
    for _ in range(args.repeats):
        for mode in ("computed", "from_cache"):
            gt = cached.to(args.device) if mode == "from_cache" else None
            start = time.perf_counter()
            rollout = step.rollout(batch, torch.Generator(device=args.device).manual_seed(0), gt_features=gt)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            timings[mode].append(time.perf_counter() - start)
            timings[f"{mode}_features_s"].append(rollout.timings["features_s"])
    return timings


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seq-len", type=int, default=264)
    parser.add_argument("--chunks", type=int, default=16, help="chunks in the cache build")
    parser.add_argument("--batch", type=int, default=4, help="chunks per rollout / per feature forward")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    layout = StridedLayout(seq_len=args.seq_len, context=8, stride=8, block_len=8)
    config = EBFTStepConfig(layout=layout, sampling=SamplingConfig(n_samples=4), features=FeatureConfig())

    policy = smollm2_shaped_model(args.device, dtype, seed=0)
    network = FeatureNetwork(smollm2_shaped_model(args.device, dtype, seed=0), config.features)
    ids = torch.randint(
        1, policy.config.vocab_size, (args.chunks, args.seq_len), generator=torch.Generator().manual_seed(0)
    )
    split = ChunkSplit(ids.int(), torch.zeros_like(ids, dtype=torch.int32), torch.zeros_like(ids, dtype=torch.bool))
    key = make_cache_key("benchmark", network, {"train": split}, layout, False)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_feature_cache(Path(tmp) / "features", network, {"train": split}, layout, key, batch_size=args.batch)
        build_s = time.perf_counter() - start
        cache = FeatureCache.open(Path(tmp) / "features", key)
        cached = cache.features("train", slice(0, args.batch))

    timings = time_rollouts(EBFTStep(policy, network, config), split, cached, args)
    computed, from_cache = statistics.median(timings["computed"]), statistics.median(timings["from_cache"])
    record = {
        "benchmark": "feature_cache",
        "environment": environment(args.device),
        "config": vars(args) | {"model": "SmolLM2-135M-shaped Llama, random weights", "layers": "quartiles"},
        "build": {"chunks": args.chunks, "seconds": round(build_s, 3), "chunks_per_s": round(args.chunks / build_s, 3)},
        "rollout": {
            "chunks": args.batch,
            "computed_gt_s": round(computed, 3),
            "cached_gt_s": round(from_cache, 3),
            "saved_s": round(computed - from_cache, 3),
            "saved_fraction": round((computed - from_cache) / computed, 4),
            "features_phase_computed_s": round(statistics.median(timings["computed_features_s"]), 3),
            "features_phase_cached_s": round(statistics.median(timings["from_cache_features_s"]), 3),
            "runs": timings["computed"] + timings["from_cache"],
        },
    }
    write_json(args.out, record)
    print(record["build"], record["rollout"])
    return record


if __name__ == "__main__":
    main()
