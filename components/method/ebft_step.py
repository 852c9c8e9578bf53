"""One EBFT step on a batch of chunks: sample -> features -> rewards -> loss.

    step = EBFTStep(policy, FeatureNetwork.frozen_copy_of(policy, cfg.features), cfg)   # policy: any HF causal LM
    out = step(ChunkBatch(input_ids), generator)      # == step.loss(step.rollout(batch, generator))
    out.loss.backward(); optimizer.step()

``rollout`` (no gradients) samples with the KV-cached strided sampler, embeds generated and ground-truth blocks with
the frozen feature network and computes rewards and RLOO advantages. ``loss`` runs the policy's strided forward with
gradients and returns the scalar objective with dashboard diagnostics. The trainer and the tests use this same path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from components.data.chunk_store import ChunkBatch
from components.engine.causal_lm import compute_dtype
from components.engine.forward import strided_logprobs
from components.engine.masks import StridedMasks, build_strided_masks
from components.engine.policy import as_policy_module, language_model
from components.engine.sampler import StridedSamples
from components.engine.token_sampling import Generators
from components.method.config import EBFTStepConfig
from components.method.feature_network import FeatureNetwork
from components.method.loss import ebft_loss, masked_mean, masked_std
from components.method.rewards import Rewards, compute_rewards, token_advantages


@dataclass(frozen=True)
class Rollout:
    batch: ChunkBatch
    masks: StridedMasks  # in the policy's dtype
    samples: StridedSamples
    rewards: Rewards
    ref_logprobs: torch.Tensor | None  # (B*n, NB*G) under the frozen reference, when one is configured
    timings: dict[str, float]

    @property
    def sampled_tokens(self) -> int:
        return self.samples.tokens.numel()


@dataclass(frozen=True)
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float]
    rollout: Rollout


class EBFTStep:
    """Runs EBFT steps for one policy, feature network and (optional) KL reference."""

    def __init__(
        self,
        policy: torch.nn.Module,
        feature_network: FeatureNetwork,
        config: EBFTStepConfig,
        reference: torch.nn.Module | None = None,
        reference_is_feature_network: bool = False,
    ):
        """``reference``: a frozen model for the KL term. ``reference_is_feature_network``: the feature network is the
        frozen base model, so its forward also gives the reference log-probs (KL is then always reported)."""
        if config.loss.kl_coef > 0 and reference is None and not reference_is_feature_network:
            raise ValueError("loss.kl_coef > 0 needs a frozen reference model")
        self.reference_is_feature_network = reference_is_feature_network
        self.policy = as_policy_module(policy)  # all policy computation goes through it (DDP/FSDP may wrap it)
        self.features = feature_network
        self.config = config
        self.reference = reference

    def masks(self, batch: ChunkBatch, dtype: torch.dtype) -> StridedMasks:
        cfg = self.config
        return build_strided_masks(
            cfg.layout,
            doc_ids=batch.doc_ids if cfg.document_masking else None,
            qa_mask=batch.qa_mask if cfg.qa_masking else None,
            dtype=dtype,
            device=batch.input_ids.device,
        )

    @torch.no_grad()
    def rollout(
        self, batch: ChunkBatch, generator: Generators = None, gt_features: torch.Tensor | None = None
    ) -> Rollout:
        """Sample, embed and score. ``gt_features`` (B, NB, D) from the feature cache skip their recomputation."""
        cfg, layout = self.config, self.config.layout
        if batch.input_ids.shape[1] != layout.seq_len:
            raise ValueError(f"chunks have {batch.input_ids.shape[1]} tokens; layout.seq_len is {layout.seq_len}")
        if cfg.document_masking and batch.doc_ids is None:
            raise ValueError("document_masking is on but the batch has no doc_ids")
        if cfg.qa_masking and batch.qa_mask is None:
            raise ValueError("qa_masking is on but the batch has no qa_mask")
        masks = self.masks(batch, compute_dtype(language_model(self.policy)))
        t0 = time.perf_counter()
        samples = self.policy(batch.input_ids, masks, sample=cfg.sampling, generator=generator)
        t1 = time.perf_counter()
        gen_tokens = samples.step_major(layout)
        ref_logprobs = None
        # The feature network runs in its own dtype, never under the policy's autocast: that is how the features
        # stage built the cache and how evaluation reads features, so cached and live features agree exactly.
        with torch.autocast(batch.input_ids.device.type, enabled=False):
            feature_dtype = compute_dtype(self.features.model)
            feature_masks = masks if feature_dtype == masks.prompt_mask.dtype else self.masks(batch, feature_dtype)
            if self.reference_is_feature_network:
                gen_feats, gt_feats, ref_logprobs = self.features.strided_features_and_logprobs(
                    batch.input_ids, gen_tokens, feature_masks, cfg.sampling.temperature
                )
            else:
                gen_feats, gt_feats = self.features.strided_features(batch.input_ids, gen_tokens, feature_masks)
        if gt_features is not None:
            if gt_features.shape != gt_feats.shape:
                raise ValueError(
                    f"cached ground-truth features have shape {tuple(gt_features.shape)}, "
                    f"the feature network gives {tuple(gt_feats.shape)}: the cache was built for other settings"
                )
            gt_feats = gt_features.to(gen_feats)
        rewards = compute_rewards(gen_feats, gt_feats, masks.block_valid, cfg.rewards)
        t2 = time.perf_counter()
        if self.reference is not None:
            ref_logprobs = strided_logprobs(
                self.reference,
                batch.input_ids,
                gen_tokens,
                masks,
                temperature=cfg.sampling.temperature,
                chunk_size=cfg.logit_chunk_size,
            ).gen_logprobs
        timings = {"sample_s": t1 - t0, "features_s": t2 - t1, "reference_s": time.perf_counter() - t2}
        return Rollout(batch, masks, samples, rewards, ref_logprobs, timings)

    def loss(self, rollout: Rollout) -> tuple[torch.Tensor, dict[str, float]]:
        """Policy forward with gradients; returns the scalar loss and float diagnostics."""
        cfg, layout = self.config, self.config.layout
        gen_tokens = rollout.samples.step_major(layout)
        logprobs = self.policy(
            rollout.batch.input_ids,
            rollout.masks,
            gen_tokens,
            temperature=cfg.sampling.temperature,
            mode=cfg.forward_mode,
            chunk_size=cfg.logit_chunk_size,
            with_entropy=True,
        )
        rewards = rollout.rewards
        adv, token_mask = token_advantages(rewards.advantages, rewards.valid, layout)
        loss, parts = ebft_loss(
            logprobs.gen_logprobs,
            adv,
            token_mask,
            logprobs.gt_logprobs,
            rollout.masks.target_mask,
            cfg.loss,
            rollout.ref_logprobs,
        )
        sampled_logp = layout.to_step_major(rollout.samples.logprobs).reshape_as(gen_tokens)
        valid = rewards.valid[:, None, :].expand_as(rewards.reward)
        diagnostics = {
            **parts,
            "entropy": masked_mean(logprobs.gen_entropy, token_mask),
            "reward": masked_mean(rewards.reward, valid),
            "reward_std": masked_std(rewards.reward, valid),
            "alignment": masked_mean(rewards.alignment, valid),
            "diversity": masked_mean(rewards.diversity, valid),
            "advantage_std": masked_std(rewards.advantages, valid),
            "advantage_abs_max": rewards.advantages.abs().max(),
            "valid_block_frac": rewards.valid.float().mean(),
            # on-policy check: the training forward must reproduce the sampler's log-probs
            "logp_gap": masked_mean((logprobs.gen_logprobs.detach() - sampled_logp).abs(), token_mask),
        }
        metrics = {k: float(v) for k, v in diagnostics.items()}
        metrics.update({f"time/{k}": v for k, v in rollout.timings.items()})
        return loss, metrics

    def __call__(
        self, batch: ChunkBatch, generator: Generators = None, gt_features: torch.Tensor | None = None
    ) -> StepOutput:
        rollout = self.rollout(batch, generator, gt_features)
        loss, metrics = self.loss(rollout)
        return StepOutput(loss, metrics, rollout)
