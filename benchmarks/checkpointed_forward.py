"""Activation checkpointing with the cached training forward, against the dense forward it used to need.

    python -m benchmarks.checkpointed_forward --out benchmarks/results/checkpointed_forward_cpu.json

One training forward + backward of the policy (log-probs of n sampled continuations of every block, and the chunk's
CE) on one chunk at the paper's geometry, L=1024, C=s=G=8, n=4, with SmolLM2-135M-shaped random weights. Three ways:
cached without checkpointing, cached with checkpointing (possible since the cache survives the replay), and dense with
checkpointing (the only way before). Each runs in its own process; figures are medians over ``--repeats`` after one
warm-up. On CPU the peak is the process's RSS high-water mark above where it started.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import environment, run_isolated, smollm2_shaped_model, time_training_forward, write_json
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks

WAYS = {"cached": ("cached", False), "cached+checkpointing": ("cached", True), "dense+checkpointing": ("dense", True)}


def one_way(way: str, seq_len: int, n: int, repeats: int, device: str) -> dict:
    mode, checkpointing = WAYS[way]
    layout = StridedLayout(seq_len=seq_len, context=8, stride=8, block_len=8)
    model = smollm2_shaped_model(device, torch.float32).train()
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 49_152, (1, seq_len), generator=gen).to(device)
    tokens = torch.randint(1, 49_152, (n, layout.gen_len), generator=gen).to(device)
    masks = build_strided_masks(layout, device=device)

    positions = seq_len + n * layout.gen_len if mode == "cached" else n * (seq_len + layout.gen_len)
    timing = time_training_forward(model, ids, tokens, masks, mode, device, repeats)
    return {"way": way, "positions_per_chunk": positions, **timing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/checkpointed_forward_cpu.json")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    results = {way: run_isolated(one_way, way, args.seq_len, args.samples, args.repeats, args.device) for way in WAYS}
    for r in results.values():
        print(f"{r['way']:>22}: {r['seconds']:7.2f} s, peak {r['peak_mb']:8.0f} MB, {r['positions_per_chunk']} pos")
    dense, cached = results["dense+checkpointing"], results["cached+checkpointing"]
    record = {
        "environment": environment(args.device),
        "geometry": {"seq_len": args.seq_len, "context": 8, "stride": 8, "block_len": 8, "n_samples": args.samples},
        "results": list(results.values()),
        "checkpointed_cached_vs_dense": {
            "time_ratio_dense_over_cached": dense["seconds"] / cached["seconds"],
            "peak_ratio_dense_over_cached": dense["peak_mb"] / cached["peak_mb"],
            "same_loss": abs(dense["loss"] - cached["loss"]) < 1e-4 * max(1.0, abs(dense["loss"])),
        },
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
