"""Two EBFT optimizer steps on a tiny model, sharded with FSDP2 the way accelerate shards it (one unit per decoder
layer, then the whole policy) or not sharded at all. test_fsdp2.py runs it under torchrun (two gloo processes) and
in its own process, and compares. Usage: python -m tests.training.fsdp2_worker OUT.pt"""

from __future__ import annotations

import sys

import numpy as np
import torch

from components.data.chunk_store import ChunkBatch
from components.data.order import chunk_generators
from components.data.tiny_models import tiny_causal_lm
from components.engine.layout import StridedLayout
from components.engine.policy import StridedPolicy
from components.method.config import EBFTStepConfig
from components.method.ebft_step import EBFTStep
from components.method.feature_network import FeatureNetwork
from components.training.lora import merged
from components.training.sharding import gathered, total_grad_norm

CONFIG = EBFTStepConfig(layout=StridedLayout(seq_len=16, context=4, stride=4, block_len=4))
CHUNKS, STEPS, SEED = 4, 2, 0


def shard_like_accelerate(policy: StridedPolicy) -> None:
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from torch.distributed.fsdp import fully_shard

    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
    wraps = fsdp2_prepare_auto_wrap_policy(plugin, policy)
    layers = [m for m in policy.modules() if wraps(m)]
    assert layers, "accelerate's wrap policy found no decoder layer in the policy"
    for layer in layers:
        fully_shard(layer)
    fully_shard(policy)


def train(rank: int = 0, world: int = 1, *, lora: bool = False) -> dict:
    """Weights after STEPS steps and each step's gradient norm. Each process takes its contiguous share of the
    step's chunks; one process does the shares as micro-batches (the training loop's split)."""
    lm = tiny_causal_lm("llama", seed=SEED)
    features = FeatureNetwork.frozen_copy_of(lm, CONFIG.features)
    if lora:
        from peft import LoraConfig, get_peft_model

        lm = get_peft_model(
            lm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        )
    policy = StridedPolicy(lm.train())
    if world > 1:
        shard_like_accelerate(policy)
    step_runner = EBFTStep(policy, features, CONFIG)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(2, 101, (CHUNKS, CONFIG.layout.seq_len), generator=torch.Generator().manual_seed(SEED))
    per = CHUNKS // 2
    shares = [np.arange(r * per, (r + 1) * per) for r in range(2)]
    mine = [shares[rank]] if world > 1 else shares
    norms, rewards = [], []
    for step in range(STEPS):
        for positions in mine:
            out = step_runner(ChunkBatch(ids[positions]), chunk_generators(SEED, step, positions))
            (out.loss / len(mine)).backward()
            rewards.append(out.metrics["reward"])
        norms.append(float(total_grad_norm(policy.parameters())))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    with torch.no_grad(), gathered(policy, policy.lm) as lm:
        weights = None if lm is None else {k: v.detach().clone() for k, v in merged(lm).state_dict().items()}
    return {"weights": weights, "grad_norms": norms, "rewards": rewards}


def main(out: str) -> None:
    import torch.distributed as dist

    lora = "--lora" in sys.argv
    dist.init_process_group("gloo")
    result = train(dist.get_rank(), dist.get_world_size(), lora=lora)
    if dist.get_rank() == 0:
        torch.save(result, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
