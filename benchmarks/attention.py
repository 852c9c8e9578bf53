"""The strided training forward's attention: SDPA with the dense additive mask against FlexAttention block masks.

    python -m benchmarks.attention --device cuda --out benchmarks/results/attention_gpu.json

One training forward + backward of the policy (log-probs of n sampled continuations of every block, and the chunk's
CE) on one chunk at the paper's geometry, L=1024, C=s=G=8, n=4, under bf16 autocast, with random weights of a
1.5B-class shape (``--shape``). ``forward_mode`` cached (SDPA; with a float mask PyTorch picks its memory-efficient
kernel) against flex (FlexAttention, compiled), each with and without activation checkpointing, each in its own
process; medians over ``--repeats`` after one warm-up (which includes flex's compilation). FlexAttention has no
backward on CPU, so ``--forward-only`` is what runs there (a check that the script works; its unfused CPU reference
says nothing about GPU speed).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import SHAPES, environment, run_isolated, shaped_model, time_training_forward, write_json
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks

WAYS = {"cached": ("cached", False), "flex": ("flex", False),
        "cached+checkpointing": ("cached", True), "flex+checkpointing": ("flex", True)}  # fmt: skip


def one_way(way: str, shape: str, seq_len: int, n: int, repeats: int, device: str, forward_only: bool) -> dict:
    mode, checkpointing = WAYS[way]
    layout = StridedLayout(seq_len=seq_len, context=8, stride=8, block_len=8)
    model = shaped_model(shape, device, torch.float32).train()
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    vocab = SHAPES[shape]["vocab_size"]
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (1, seq_len), generator=gen).to(device)
    tokens = torch.randint(1, vocab, (n, layout.gen_len), generator=gen).to(device)
    cuda = device.startswith("cuda")
    masks = build_strided_masks(layout, dtype=torch.bfloat16 if cuda else torch.float32, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else None
    timing = time_training_forward(model, ids, tokens, masks, mode, device, repeats, autocast=autocast,
                                   backward=not forward_only)  # fmt: skip
    return {"way": way, **timing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-1.5b")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--forward-only", action="store_true", help="no backward (what FlexAttention allows on CPU)")
    args = parser.parse_args()
    if args.device == "cpu" and not args.forward_only:
        parser.error("FlexAttention has no backward on CPU: pass --forward-only (or run on a GPU)")
    results = {
        way: run_isolated(
            one_way, way, args.shape, args.seq_len, args.samples, args.repeats, args.device, args.forward_only
        )
        for way in WAYS
    }
    for r in results.values():
        print(f"{r['way']:>22}: {r['seconds']:7.3f} s, peak {r['peak_mb']:8.0f} MB, loss {r['loss']:.5f}")
    ratios = {
        f"{base}_over_flex{suffix}": {
            "time": results[f"{base}{suffix}"]["seconds"] / results[f"flex{suffix}"]["seconds"],
            "peak": results[f"{base}{suffix}"]["peak_mb"] / max(results[f"flex{suffix}"]["peak_mb"], 1e-9),
        }
        for base in ("cached",)
        for suffix in ("", "+checkpointing")
    }
    record = {
        "environment": environment(args.device),
        "shape": args.shape,
        "forward_only": args.forward_only,
        "geometry": {"seq_len": args.seq_len, "context": 8, "stride": 8, "block_len": 8, "n_samples": args.samples},
        "results": list(results.values()),
        "ratios": ratios,
        "same_loss": max(abs(r["loss"] - results["cached"]["loss"]) for r in results.values()) < 0.05,
    }
    write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
