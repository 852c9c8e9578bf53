"""Strided sampling, three ways, on the same model and shapes:

- kv_cached:       components.engine.sampler (one prefill per chunk, G-1 decode calls against the KV cache)
- dense_recompute: components.engine.dense_sampler (the paper code's algorithm: G full forwards with a dense mask)
- naive_generate:  HF ``generate`` once per prefix x[:a_k], n return sequences (what a user would write by hand)

    python -m benchmarks.sampling --out benchmarks/results/sampling_cpu.json --seq-len 256 512 1024

Each method runs in its own process. The JSON holds, per sequence length and method: generated tokens, wall seconds,
tokens per second, peak memory above the loaded model, and the token positions the model processed; plus the
cached sampler's speedups over the other two.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.common import environment, run_isolated, smollm2_shaped_model, timed, write_json
from components.engine.config import SamplingConfig
from components.engine.dense_sampler import sample_strided_dense
from components.engine.layout import StridedLayout
from components.engine.sampler import sample_strided

METHODS = ("kv_cached", "dense_recompute", "naive_generate")


def naive_generate(model, x: torch.Tensor, layout: StridedLayout, cfg: SamplingConfig) -> torch.Tensor:
    blocks = []
    for row in x:
        for a in layout.anchors().tolist():
            out = model.generate(
                row[None, :a],
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=None,
                max_new_tokens=layout.block_len,
                min_new_tokens=layout.block_len,
                num_return_sequences=cfg.n_samples,
                pad_token_id=0,
            )
            blocks.append(out[:, a:])
    return torch.stack(blocks)


def processed_positions(method: str, layout: StridedLayout, chunks: int, n: int) -> int:
    """Token positions pushed through the model: the cost model behind the timings."""
    L, NB, G = layout.seq_len, layout.num_blocks, layout.block_len
    if method == "kv_cached":
        return chunks * L + (G - 1) * chunks * n * NB
    if method == "dense_recompute":
        return G * chunks * n * layout.total_len
    return chunks * n * (int(layout.anchors().sum()) + NB * (G - 1))


def run_method(method: str, seq_len: int, args: dict) -> dict:
    torch.set_num_threads(args["threads"] or torch.get_num_threads())
    device, dtype = args["device"], getattr(torch, args["dtype"])
    model = smollm2_shaped_model(device, dtype)
    layout = StridedLayout(seq_len=seq_len, context=args["context"], stride=args["stride"], block_len=args["block_len"])
    cfg = SamplingConfig(n_samples=args["n_samples"], temperature=args["temperature"], top_p=args["top_p"])
    x = torch.randint(1, model.config.vocab_size, (args["chunks"], seq_len), generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    with torch.no_grad():
        model(x[:, :16])  # warm-up: allocator and kernels

    def once():
        gen = torch.Generator(device=device).manual_seed(args["seed"])
        if method == "kv_cached":
            return sample_strided(model, x, layout, cfg, gen).tokens
        if method == "dense_recompute":
            return sample_strided_dense(model, x, layout, cfg, gen).tokens
        torch.manual_seed(args["seed"])
        with torch.no_grad():
            return naive_generate(model, x, layout, cfg)

    runs = [timed(device, once) for _ in range(args["repeats"] if method != "naive_generate" else 1)]
    tokens = runs[0][0]
    seconds = statistics.median(r[1] for r in runs)
    generated = args["chunks"] * cfg.n_samples * layout.gen_len
    return {
        "generated_tokens": generated,
        "wall_s": round(seconds, 4),
        "tokens_per_s": round(generated / seconds, 2),
        "peak_mem_mb": round(max(r[2] for r in runs), 1),
        "model_positions_processed": processed_positions(method, layout, args["chunks"], cfg.n_samples),
        "runs": len(runs),
        "tokens": tokens.cpu().tolist() if method != "naive_generate" else None,
    }


def parse_args(argv: list[str] | None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seq-len", type=int, nargs="+", default=[512])
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--block-len", type=int, default=8)
    parser.add_argument("--n-samples", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float32 on CPU, bfloat16 on CUDA by default")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per method (median); naive runs once")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    parser.add_argument("--seed", type=int, default=0)
    args = vars(parser.parse_args(argv))
    args["dtype"] = args["dtype"] or ("bfloat16" if args["device"].startswith("cuda") else "float32")
    return args


def measure_length(seq_len: int, args: dict, console: Console) -> dict:
    """Every method at one chunk length, with the KV-cached sampler's speed-ups and whether its tokens match."""
    layout = StridedLayout(seq_len=seq_len, context=args["context"], stride=args["stride"], block_len=args["block_len"])
    entry = {"seq_len": seq_len, "num_blocks": layout.num_blocks, "methods": {}}
    for method in args["methods"]:
        console.log(f"L={seq_len}: {method} ...")
        entry["methods"][method] = run_isolated(run_method, method, seq_len, args)
        console.log(f"L={seq_len}: {method} {entry['methods'][method]['wall_s']:.2f} s")
    methods = entry["methods"]
    if "kv_cached" in methods:
        cached = methods["kv_cached"]["wall_s"]
        for other, key in (("dense_recompute", "speedup_vs_dense"), ("naive_generate", "speedup_vs_naive")):
            if other in methods:
                entry[key] = round(methods[other]["wall_s"] / cached, 2)
        if "dense_recompute" in methods:
            entry["tokens_match_dense"] = methods["kv_cached"]["tokens"] == methods["dense_recompute"]["tokens"]
    for m in methods.values():
        m.pop("tokens")
    return entry


def results_table(record: dict, args: dict) -> Table:
    table = Table(title=f"strided sampling on {args['device']} ({args['dtype']})")
    for col in ("L", "method", "wall s", "tokens/s", "peak MB", "positions", "speedup"):
        table.add_column(col, justify="right")
    for entry in record["results"]:
        speedup = {"dense_recompute": entry.get("speedup_vs_dense"), "naive_generate": entry.get("speedup_vs_naive")}
        for method, m in entry["methods"].items():
            table.add_row(
                str(entry["seq_len"]),
                method,
                f"{m['wall_s']:.2f}",
                f"{m['tokens_per_s']:.0f}",
                f"{m['peak_mem_mb']:.0f}",
                str(m["model_positions_processed"]),
                f"{speedup.get(method)}x" if speedup.get(method) else "",
            )
    return table


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    console = Console()
    record = {
        "benchmark": "strided_sampling",
        "environment": environment(args["device"]),
        "config": {k: v for k, v in args.items() if k not in ("out", "methods")},
        "model": "SmolLM2-135M-shaped Llama, random weights (30 layers, hidden 576, 9/3 heads, vocab 49152)",
        "results": [],
    }
    for seq_len in args["seq_len"]:
        record["results"].append(measure_length(seq_len, args, console))
        write_json(args["out"], record)  # after every length, so a long run leaves what it measured
    console.print(results_table(record, args))
    console.print(f"written to {args['out']}")
    return record


if __name__ == "__main__":
    main()
