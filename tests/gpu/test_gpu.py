"""The GPU checks of `make gpu-check` (README, "GPU"): the engine's equalities in bf16 on CUDA, one EBFT step at a
1.5B-class shape, data parallel on every visible GPU. Skipped, with that reason, where there is no CUDA GPU."""

import json

import pytest
import torch

from benchmarks.common import shaped_model
from components.data.chunk_store import ChunkBatch
from components.data.tiny_models import tiny_causal_lm
from components.engine.config import SamplingConfig
from components.engine.dense_sampler import sample_strided_dense
from components.engine.forward import strided_logprobs
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks
from components.engine.sampler import sample_strided
from components.method.config import EBFTStepConfig
from components.method.ebft_step import EBFTStep
from components.method.feature_network import FeatureNetwork
from tests.engine.test_oracle import plain_block
from tests.helpers.project import write_params

pytestmark = pytest.mark.gpu
BF16_TOL = 0.1  # log-prob difference between the strided and the plain bf16 forward (bf16 keeps ~3 digits)


def test_bf16_strided_log_probs_equal_plain_causal_forwards():
    layout = StridedLayout(seq_len=64, context=8, stride=8, block_len=8)
    model = tiny_causal_lm("llama", hidden_size=128, seed=1).cuda()
    x = torch.randint(2, 101, (2, layout.seq_len), device="cuda")
    masks = build_strided_masks(layout, dtype=torch.bfloat16, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16), torch.no_grad():
        gen = torch.Generator(device="cuda").manual_seed(0)
        samples = sample_strided(model, x, layout, SamplingConfig(n_samples=2), gen, masks)
        lp = strided_logprobs(model, x, samples.step_major(layout), masks, temperature=0.6)
        by_block = layout.to_block_major(lp.gen_logprobs).reshape(2, 2, layout.num_blocks, layout.block_len)
        worst = 0.0
        for b in range(2):
            for k, a in enumerate(layout.anchors().tolist()):
                for i in range(2):
                    logp, _ = plain_block(model, torch.cat([x[b, :a], samples.tokens[b, i, k]]), 0.6, 8)
                    worst = max(worst, (by_block[b, i, k] - logp).abs().max().item())
    assert worst < BF16_TOL, worst


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flex_attention_gives_the_cached_forwards_log_probs_and_gradients(dtype):
    """FlexAttention's backward exists only on CUDA: the CPU oracle tests check flex's forward, this its gradients."""
    layout = StridedLayout(seq_len=64, context=8, stride=8, block_len=8)
    x = torch.randint(2, 101, (2, layout.seq_len), device="cuda")
    masks = build_strided_masks(layout, doc_ids=(torch.arange(64, device="cuda")[None] >= 30).long().expand(2, -1),
                                dtype=dtype, device="cuda")  # fmt: skip
    results = {}
    for name, mode, checkpointing in (
        ("cached", "cached", False),
        ("flex", "flex", False),
        ("flex+ckpt", "flex", True),
    ):
        model = tiny_causal_lm("qwen2", hidden_size=128, seed=1).cuda().to(dtype).train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        samples = sample_strided(
            model, x, layout, SamplingConfig(n_samples=2), torch.Generator(device="cuda").manual_seed(0), masks
        )
        lp = strided_logprobs(model, x, samples.step_major(layout), masks, temperature=0.6, mode=mode)
        (lp.gen_logprobs.mean() - lp.gt_logprobs.mean()).backward()
        grads = torch.cat([p.grad.float().flatten() for p in model.parameters()])
        results[name] = (lp.gen_logprobs.detach().float(), grads)
    tol, rtol = (1e-4, 1e-3) if dtype == torch.float32 else (BF16_TOL, 0.05)
    for name in ("flex", "flex+ckpt"):
        assert (results[name][0] - results["cached"][0]).abs().max() < tol, name
        assert torch.allclose(results[name][1], results["cached"][1], atol=tol, rtol=rtol), name


def test_cached_and_dense_samplers_draw_the_same_tokens_on_cuda():
    layout = StridedLayout(seq_len=64, context=8, stride=8, block_len=8)
    model = tiny_causal_lm("qwen2", hidden_size=64, seed=3).cuda()
    x = torch.randint(2, 101, (2, layout.seq_len), device="cuda")
    masks = build_strided_masks(layout, device="cuda")
    cfg = SamplingConfig(n_samples=4, temperature=0.6)
    cached = sample_strided(model, x, layout, cfg, torch.Generator(device="cuda").manual_seed(7), masks)
    dense = sample_strided_dense(model, x, layout, cfg, torch.Generator(device="cuda").manual_seed(7), masks)
    assert torch.equal(cached.tokens, dense.tokens)


def test_one_ebft_step_at_a_15b_shape_in_bf16():
    config = EBFTStepConfig(layout=StridedLayout(seq_len=1024, context=8, stride=8, block_len=8))
    policy = shaped_model("qwen2.5-1.5b", "cuda", torch.float32).train()
    features = FeatureNetwork(shaped_model("qwen2.5-1.5b", "cuda", torch.bfloat16), config.features)
    step = EBFTStep(policy, features, config)
    ids = torch.randint(1, 151_936, (1, 1024), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = step(ChunkBatch(ids), torch.Generator(device="cuda").manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.metrics["logp_gap"] < BF16_TOL
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)


def test_data_parallel_on_every_visible_gpu(workdir):
    if torch.cuda.device_count() < 2:
        pytest.skip(f"data parallel needs 2+ GPUs; {torch.cuda.device_count()} visible")
    from flows import train

    processes = torch.cuda.device_count()
    overrides = {"train": {"methods": ["ebft"], "steps": 2, "num_processes": processes}}
    write_params(workdir / "params.yaml", overrides)
    train.run()
    assert json.loads((workdir / "metrics/train.json").read_text())["ebft"]["steps"] == 2
