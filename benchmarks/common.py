"""Shared pieces of the benchmarks: the model shapes they time, isolated runs, peak memory and the JSON record."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from components.training.memory import peak_memory, reset_peak_memory

# SmolLM2-135M's shape (the offline default model), with random weights: timing does not depend on their values.
SMOLLM2_135M_SHAPE = dict(
    vocab_size=49_152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    rope_theta=100_000.0,
    tie_word_embeddings=True,
    bos_token_id=0,
    eos_token_id=0,
)


# Qwen2.5-1.5B's shape (the paper's model class), for GPU figures.
QWEN25_15B_SHAPE = dict(
    vocab_size=151_936,
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    max_position_embeddings=32_768,
    rope_theta=1_000_000.0,
    tie_word_embeddings=True,
    bos_token_id=0,
    eos_token_id=0,
)
SHAPES = {"smollm2-135m": SMOLLM2_135M_SHAPE, "qwen2.5-1.5b": QWEN25_15B_SHAPE}

# Dense bf16 peak of the GPUs we know (vendor datasheets, no sparsity), matched against the device name in order.
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def smollm2_shaped_model(device: str, dtype: torch.dtype, seed: int = 0) -> LlamaForCausalLM:
    return shaped_model("smollm2-135m", device, dtype, seed)


def shaped_model(shape: str, device: str, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """A model of a known shape with random weights (Qwen2 for the Qwen shape: its attention has q/k/v biases)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config_cls, model_cls = (
        (Qwen2Config, Qwen2ForCausalLM) if shape.startswith("qwen") else (LlamaConfig, LlamaForCausalLM)
    )
    with torch.device(device):
        model = model_cls(config_cls(**SHAPES[shape]))
    return model.to(dtype=dtype).eval()


def peak_bf16_flops(device: str) -> float | None:
    """The GPU's dense bf16 peak (FLOP/s), or None (CPU, or a GPU not in PEAK_BF16_FLOPS)."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


def timed(device: str, fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``fn`` once; returns its result, wall seconds and peak memory above the starting level (MB)."""
    start_mb = reset_peak_memory(device)
    t0 = time.perf_counter()
    result = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return result, seconds, peak_memory(device) - start_mb


def time_training_forward(
    model: torch.nn.Module,
    ids: torch.Tensor,
    tokens: torch.Tensor,
    masks,
    mode: str,
    device: str,
    repeats: int,
    *,
    autocast: contextlib.AbstractContextManager | None = None,
    backward: bool = True,
) -> dict[str, float]:
    """The policy's training forward (log-probs of the generated tokens and the chunk's CE) and its backward, timed:
    medians of seconds and peak MB over ``repeats`` runs after one warm-up, and the loss of the first timed run."""
    from components.engine.forward import strided_logprobs

    def step() -> float:
        model.zero_grad(set_to_none=True)
        with autocast or contextlib.nullcontext(), contextlib.nullcontext() if backward else torch.no_grad():
            lp = strided_logprobs(model, ids, tokens, masks, temperature=0.6, mode=mode)
            loss = lp.gen_logprobs.float().mean() - lp.gt_logprobs.float().mean()
        if backward:
            loss.backward()
        return float(loss.detach())

    runs = [timed(device, step) for _ in range(repeats + 1)][1:]
    return {
        "seconds": statistics.median(s for _, s, _ in runs),
        "peak_mb": statistics.median(m for _, _, m in runs),
        "loss": runs[0][0],
    }


def run_isolated(fn: Callable[..., dict], *args: Any) -> dict:
    """Run ``fn(*args)`` in a fresh process, so one method's memory and caches never colour another's figures."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def environment(device: str) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import transformers

    info = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": commit.strip(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_json(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
