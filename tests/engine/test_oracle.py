"""The correctness oracle of docs/method.md §2: every block of the strided computation equals a plain causal forward
over ``x[:a_k] + ŷ_k`` with positions ``0..a_k+G-1`` (per document when documents are masked)."""

import random

import pytest
import torch

from components.data.tiny_models import tiny_causal_lm
from components.engine.causal_lm import logit_head
from components.engine.config import SamplingConfig
from components.engine.dense_sampler import sample_strided_dense
from components.engine.forward import strided_logprobs
from components.engine.layout import StridedLayout
from components.engine.masks import build_strided_masks, document_segments
from components.engine.sampler import sample_strided
from components.method.config import FeatureConfig
from components.method.feature_network import FeatureNetwork

TOL = 1e-4
LAYERS = [0, 2, -1]  # embeddings, a middle layer, the final normed state


def random_case(seed: int):
    rng = random.Random(seed)
    c, s, g, nb = rng.randint(1, 6), rng.randint(1, 4), rng.randint(1, 5), rng.randint(1, 6)
    if seed % 3 == 0:  # make sure overlapping blocks (s < G) are always covered
        s, g = 1, rng.randint(2, 5)
    layout = StridedLayout(seq_len=c + g + s * (nb - 1), context=c, stride=s, block_len=g)
    return layout, rng.choice([0.5, 0.7, 1.0]), rng.choice([1.0, 0.9])


def plain_block(model, tokens: torch.Tensor, temperature: float, num_predicted: int):
    """Plain causal forward over one sequence: log-probs of its last ``num_predicted`` tokens and hidden states."""
    out = model(tokens[None], output_hidden_states=True)
    logits = logit_head(model)(out.hidden_states[-1][0]).float() / temperature
    logp = torch.log_softmax(logits[-num_predicted - 1 : -1], dim=-1)
    return logp.gather(-1, tokens[-num_predicted:, None]).squeeze(-1), out.hidden_states


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
@pytest.mark.parametrize("with_docs", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_strided_blocks_equal_plain_causal_forwards(architecture, with_docs, seed):
    layout, temperature, top_p = random_case(seed)
    model = tiny_causal_lm(architecture, seed=seed)
    features = FeatureNetwork(model, FeatureConfig(layers=LAYERS, pooling="token"))
    gen = torch.Generator().manual_seed(seed)
    B, n, G = 2, 3, layout.block_len
    x = torch.randint(2, model.config.vocab_size, (B, layout.seq_len), generator=gen)
    doc_ids = (torch.rand(B, layout.seq_len, generator=gen) < 0.25).long().cumsum(1) if with_docs else None
    masks = build_strided_masks(layout, doc_ids=doc_ids)
    start = document_segments(doc_ids)[1] if with_docs else torch.zeros_like(x)

    cfg = SamplingConfig(n_samples=n, temperature=temperature, top_p=top_p)
    samples = sample_strided(model, x, layout, cfg, gen, masks)
    flat = samples.step_major(layout)
    by_mode = {}
    for mode in ("cached", "flex", "dense"):
        lp = strided_logprobs(model, x, flat, masks, temperature=temperature, mode=mode)
        gen_feats, gt_feats = features.strided_features(x, flat, masks, mode=mode)
        by_mode[mode] = (layout.to_block_major(lp.gen_logprobs).reshape(B, n, -1, G), gen_feats, gt_feats)
    standalone_gt = features.ground_truth_features(x, masks)

    for b in range(B):
        for k, a in enumerate(layout.anchors().tolist()):
            s0 = start[b, a - 1].item()
            for i in range(n):
                block = samples.tokens[b, i, k]
                logp, hidden = plain_block(model, torch.cat([x[b, s0:a], block]), temperature, G)
                oracle_feats = features.token_features(tuple(h[0, -G:] for h in hidden))
                assert (samples.logprobs[b, i, k] - logp).abs().max() < TOL
                for mode, (lp, gen_feats, _) in by_mode.items():
                    assert (lp[b, i, k] - logp).abs().max() < TOL, mode
                    assert (gen_feats[b, i, k] - oracle_feats).abs().max() < TOL, mode
            if masks.block_valid[0 if masks.block_valid.shape[0] == 1 else b, k]:
                _, hidden = plain_block(model, x[b, s0 : a + G], 1.0, G)
                oracle_gt = features.token_features(tuple(h[0, -G:] for h in hidden))
                assert (standalone_gt[b, k] - oracle_gt).abs().max() < TOL
                for mode, (_, _, gt_feats) in by_mode.items():
                    assert (gt_feats[b, k] - oracle_gt).abs().max() < TOL, mode


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_cached_and_dense_samplers_draw_identical_tokens(architecture):
    layout = StridedLayout(seq_len=26, context=4, stride=2, block_len=4)
    model = tiny_causal_lm(architecture, seed=3)
    x = torch.randint(2, model.config.vocab_size, (2, layout.seq_len), generator=torch.Generator().manual_seed(0))
    doc_ids = torch.tensor([[0] * 10 + [1] * 16, [0] * 26])
    masks = build_strided_masks(layout, doc_ids=doc_ids)
    for cfg in (SamplingConfig(n_samples=4, temperature=0.6), SamplingConfig(n_samples=3, temperature=1.0, top_p=0.8)):
        cached = sample_strided(model, x, layout, cfg, torch.Generator().manual_seed(7), masks)
        dense = sample_strided_dense(model, x, layout, cfg, torch.Generator().manual_seed(7), masks)
        assert torch.equal(cached.tokens, dense.tokens)
        assert (cached.logprobs - dense.logprobs).abs().max() < TOL
        again = sample_strided(model, x, layout, cfg, torch.Generator().manual_seed(7), masks)
        assert torch.equal(again.tokens, cached.tokens)


def test_eager_attention_gives_the_same_log_probs():
    layout = StridedLayout(seq_len=20, context=3, stride=3, block_len=5)
    sdpa = tiny_causal_lm("llama", seed=5)
    eager = tiny_causal_lm("llama", seed=5, attn_implementation="eager")
    x = torch.randint(2, 101, (2, layout.seq_len))
    doc_ids = torch.tensor([[0] * 9 + [1] * 11, [0] * 20])
    masks = build_strided_masks(layout, doc_ids=doc_ids)
    samples = sample_strided(sdpa, x, layout, SamplingConfig(n_samples=2), torch.Generator().manual_seed(1), masks)
    flat = samples.step_major(layout)
    a = strided_logprobs(sdpa, x, flat, masks, temperature=0.6)
    b = strided_logprobs(eager, x, flat, masks, temperature=0.6)
    assert (a.gen_logprobs - b.gen_logprobs).abs().max() < TOL
    assert (a.gt_logprobs - b.gt_logprobs).abs().max() < TOL


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_ce_term_equals_the_ordinary_lm_loss(architecture):
    layout = StridedLayout(seq_len=24, context=4, stride=4, block_len=4)
    model = tiny_causal_lm(architecture, seed=2)
    x = torch.randint(2, model.config.vocab_size, (3, layout.seq_len))
    masks = build_strided_masks(layout)
    samples = sample_strided(model, x, layout, SamplingConfig(n_samples=2), torch.Generator().manual_seed(0))
    for mode in ("cached", "flex", "dense"):
        with torch.no_grad():  # FlexAttention has no CPU backward; flex gradients are a GPU check (tests/gpu)
            lp = strided_logprobs(model, x, samples.step_major(layout), masks, temperature=0.6, mode=mode, chunk_size=7)
        ce = -lp.gt_logprobs.mean()
        assert abs(ce.item() - model(x, labels=x).loss.item()) < 1e-5


def test_gradients_of_cached_and_dense_forwards_agree():
    layout = StridedLayout(seq_len=18, context=2, stride=2, block_len=4)
    model = tiny_causal_lm("llama", seed=4)
    x = torch.randint(2, 101, (2, layout.seq_len))
    masks = build_strided_masks(layout, doc_ids=torch.tensor([[0] * 8 + [1] * 10, [0] * 18]))
    samples = sample_strided(model, x, layout, SamplingConfig(n_samples=3), torch.Generator().manual_seed(0), masks)
    weights = torch.randn(6, layout.gen_len)
    grads = {}
    for mode in ("cached", "dense"):
        model.zero_grad()
        lp = strided_logprobs(model, x, samples.step_major(layout), masks, temperature=0.6, mode=mode, chunk_size=5)
        ((lp.gen_logprobs * weights).mean() - lp.gt_logprobs.mean()).backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(grads["cached"], grads["dense"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_the_cached_forward_keeps_its_prefix_under_activation_checkpointing(architecture):
    """HF drops a layer's KV cache under activation checkpointing; the cached forward's own cache survives the
    backward replay, so checkpointing needs no dense fallback: same log-probs and gradients as without it."""
    layout = StridedLayout(seq_len=18, context=2, stride=2, block_len=4)
    model = tiny_causal_lm(architecture, seed=4).train()
    x = torch.randint(2, 101, (2, layout.seq_len))
    masks = build_strided_masks(layout, doc_ids=torch.tensor([[0] * 8 + [1] * 10, [0] * 18]))
    samples = sample_strided(model, x, layout, SamplingConfig(n_samples=3), torch.Generator().manual_seed(0), masks)
    weights = torch.randn(6, layout.gen_len)
    results = {}
    for name, checkpointing, mode in (
        ("plain", False, "dense"),
        ("cached", True, "cached"),
        ("dense", True, "dense"),
    ):
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.zero_grad()
        lp = strided_logprobs(model, x, samples.step_major(layout), masks, temperature=0.6, mode=mode, chunk_size=5)
        ((lp.gen_logprobs * weights).mean() - lp.gt_logprobs.mean()).backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        results[name] = (lp.gen_logprobs.detach(), lp.gt_logprobs.detach(), grads)
    for name in ("cached", "dense"):
        for got, want in zip(results[name], results["plain"], strict=True):
            assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), name


def test_per_chunk_generators_make_samples_independent_of_batch_mates():
    layout = StridedLayout(seq_len=14, context=2, stride=3, block_len=3)
    model = tiny_causal_lm("llama", seed=6)
    x = torch.randint(2, 101, (3, layout.seq_len), generator=torch.Generator().manual_seed(0))
    cfg = SamplingConfig(n_samples=2)

    def gens(seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    together = sample_strided(model, x, layout, cfg, gens([10, 11, 12]))
    alone = sample_strided(model, x[1:2], layout, cfg, gens([11]))
    assert torch.equal(together.tokens[1], alone.tokens[0])
    dense = sample_strided_dense(model, x, layout, cfg, gens([10, 11, 12]))
    assert torch.equal(together.tokens, dense.tokens)


def test_flex_refuses_to_train_on_cpu_and_says_what_to_use():
    layout = StridedLayout(seq_len=12, context=2, stride=2, block_len=2)
    model = tiny_causal_lm("llama", seed=0)
    x = torch.randint(2, 101, (1, layout.seq_len))
    masks = build_strided_masks(layout)
    samples = sample_strided(model, x, layout, SamplingConfig(n_samples=2), torch.Generator().manual_seed(0), masks)
    with pytest.raises(ValueError, match=r"no backward on CPU.*'cached'"):
        strided_logprobs(model, x, samples.step_major(layout), masks, temperature=0.6, mode="flex")
