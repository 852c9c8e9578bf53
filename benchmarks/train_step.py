"""Cost of one EBFT training step, split into sampling / features / update, next to one SFT step on the same chunks.

    python -m benchmarks.train_step --out benchmarks/results/train_step_cpu.json

Configurations: the default params (chunk length, rollouts per step, micro-batches from params.yaml) and ``--seq-len``
512, each on SmolLM2-135M-shaped random weights (timing does not depend on the weights' values). Each method runs in
its own process; figures are medians over ``--repeats`` steps after one warm-up step. The ratio EBFT/SFT is the price
of the method per optimizer step.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from benchmarks.common import environment, peak_bf16_flops, run_isolated, shaped_model, write_json
from components.data.chunk_store import ChunkBatch
from components.engine.policy import StridedPolicy
from components.method.ebft_step import EBFTStep
from components.method.feature_network import FeatureNetwork
from components.method.sft_step import SFTStep
from components.params.loading import load_params
from components.training.memory import peak_memory, reset_peak_memory


def one_method(
    method: str, seq_len: int, chunks: int, micro: int, repeats: int, device: str, shape: str = "smollm2-135m"
) -> dict:
    params = load_params()
    data = params.data.model_copy(update={"seq_len": seq_len})
    params = params.model_copy(update={"data": data})
    config = params.ebft_config()
    gpu = device.startswith("cuda")
    lm = shaped_model(shape, device, torch.float32, seed=0).train()  # fp32 master weights, bf16 autocast on GPU
    policy = StridedPolicy(lm)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6, betas=(0.9, 0.95))
    vocab = lm.config.vocab_size
    ids = torch.randint(1, vocab, (chunks, seq_len), generator=torch.Generator().manual_seed(0)).to(device)

    def autocast():  # what accelerate's bf16 mixed precision does in the trainer
        return torch.autocast("cuda", dtype=torch.bfloat16) if gpu else contextlib.nullcontext()

    if method == "ebft":
        feature_dtype = torch.bfloat16 if gpu else torch.float32  # features.dtype: auto
        features = FeatureNetwork(shaped_model(shape, device, feature_dtype, seed=0), config.features)
        runner = EBFTStep(policy, features, config)
    else:
        runner = SFTStep(policy, config.layout)
    n_micro = chunks // micro
    steps = []
    for repeat in range(repeats + 1):  # the first step warms up allocator and kernels
        reset_peak_memory(device)
        timing = {"sample_s": 0.0, "features_s": 0.0, "update_s": 0.0}
        tokens = {"sample": 0, "update": 0}
        start = time.perf_counter()
        for j in range(n_micro):
            batch = ChunkBatch(ids[j * micro : (j + 1) * micro])
            with autocast():
                if method == "ebft":
                    rollout = runner.rollout(batch, torch.Generator(device=device).manual_seed(repeat * 100 + j))
                    timing["sample_s"] += rollout.timings["sample_s"]
                    timing["features_s"] += rollout.timings["features_s"]
                    tokens["sample"] += rollout.samples.tokens.numel()
                    tokens["update"] += batch.input_ids.numel() + rollout.samples.tokens.numel()
                    t0 = time.perf_counter()
                    loss, _ = runner.loss(rollout)
                else:
                    tokens["update"] += batch.input_ids.numel()
                    t0 = time.perf_counter()
                    loss, _ = runner.loss(batch)
            (loss / n_micro).backward()
            if gpu:
                torch.cuda.synchronize()
            timing["update_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timing["update_s"] += time.perf_counter() - t0
        timing["step_s"] = time.perf_counter() - start
        steps.append({**timing, "tokens": tokens, "peak_mem_mb": peak_memory(device)})
    measured = steps[1:]
    result = {
        k: round(statistics.median(s[k] for s in measured), 3) for k in ("sample_s", "features_s", "update_s", "step_s")
    }
    tokens = measured[0]["tokens"]
    result["tokens_per_s"] = {
        "sample": round(tokens["sample"] / result["sample_s"], 1) if result["sample_s"] else None,
        "features": round(tokens["update"] / result["features_s"], 1) if result["features_s"] else None,
        "update": round(tokens["update"] / result["update_s"], 1),
    }
    result["peak_mem_mb"] = round(max(s["peak_mem_mb"] for s in measured), 1)
    # Model FLOPs of the update: 6 per parameter per token processed (forward + backward; attention not counted),
    # over the GPU's dense bf16 peak.
    peak = peak_bf16_flops(device)
    n_params = sum(p.numel() for p in lm.parameters())
    result["parameters"] = n_params
    result["mfu_update"] = round(6 * n_params * tokens["update"] / result["update_s"] / peak, 4) if peak else None
    result["step_times_s"] = [round(s["step_s"], 3) for s in measured]
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seq-len", type=int, nargs="+", default=None, help="default: params.yaml's, then 512")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", choices=["smollm2-135m", "qwen2.5-1.5b"], default="smollm2-135m")
    args = parser.parse_args(argv)
    params = load_params()
    lengths = args.seq_len or [params.data.seq_len, 512]
    chunks, micro = params.chunks_per_step, params.train.micro_batch_chunks
    record = {
        "benchmark": "train_step",
        "environment": environment(args.device),
        "model": f"{args.shape}-shaped, random weights; AdamW over all parameters; bf16 autocast on GPU",
        "config": {
            "chunks_per_step": chunks,
            "micro_batch_chunks": micro,
            "n_samples": params.train.sampling.n_samples,
            "context/stride/block_len": [params.layout.context, params.layout.stride, params.layout.block_len],
            "forward_mode": params.train.forward_mode,
        },
        "results": [],
    }
    for seq_len in lengths:
        entry = {"seq_len": seq_len}
        for method in ("ebft", "sft"):
            print(f"L={seq_len} {method} ...", flush=True)
            entry[method] = run_isolated(
                one_method, method, seq_len, chunks, micro, args.repeats, args.device, args.shape
            )
        entry["ebft_over_sft"] = round(entry["ebft"]["step_s"] / entry["sft"]["step_s"], 2)
        record["results"].append(entry)
        write_json(args.out, record)
        e = entry["ebft"]
        print(
            f"L={seq_len}: EBFT {e['step_s']} s/step (sample {e['sample_s']}, features {e['features_s']}, "
            f"update {e['update_s']}), SFT {entry['sft']['step_s']} s/step, ratio {entry['ebft_over_sft']}x"
        )
    return record


if __name__ == "__main__":
    main()
