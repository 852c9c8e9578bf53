"""The trainable policy as one ``nn.Module``: every computation on it, sampling included, is one ``forward`` call.

DDP and FSDP expect one forward call per backward, and FSDP gathers sharded weights (embeddings, head) only inside
the wrapped module's forward. The strided training forward calls the language model twice (chunk into the KV cache,
then the generated tokens) and applies the head afterwards, and the sampler calls it G times: both run inside this
module's forward, which accelerate wraps.
"""

from __future__ import annotations

import torch

from components.engine.causal_lm import check_logit_head, core_model
from components.engine.completions import Completions, sample_completions, sequence_logprobs
from components.engine.config import ForwardMode, SamplingConfig
from components.engine.forward import StridedLogprobs, strided_logprobs, teacher_forced_logprobs
from components.engine.masks import StridedMasks
from components.engine.sampler import StridedSamples, sample_strided
from components.engine.token_sampling import Generators


class StridedPolicy(torch.nn.Module):
    def __init__(self, lm: torch.nn.Module):
        super().__init__()
        check_logit_head(lm)  # before any wrapper shards it
        self.lm = lm
        # FSDP's transformer-based wrap policy reads this from the model it prepares: without it the whole policy
        # would be one unit, every weight gathered at once
        self._no_split_modules = getattr(lm, "_no_split_modules", None)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        masks: StridedMasks | None = None,
        gen_tokens: torch.Tensor | None = None,
        *,
        temperature: float = 1.0,
        mode: ForwardMode = "cached",
        chunk_size: int = 1024,
        with_entropy: bool = False,
        sample: SamplingConfig | None = None,
        generator: Generators = None,
        attention_mask: torch.Tensor | None = None,
        complete: dict | None = None,
    ) -> StridedLogprobs | StridedSamples | Completions | torch.Tensor:
        """``sample`` given: strided sampling (StridedSamples, no gradients). ``gen_tokens`` given: the EBFT training
        forward (StridedLogprobs). ``complete`` given: full completions of prompts (``sample_completions``'
        arguments). ``attention_mask`` given: plain causal log-probs of padded sequences (B, T-1). Otherwise:
        teacher-forced log-probs (B, L-1) of the chunks."""
        if complete is not None:
            return sample_completions(self.lm, generator=generator, **complete)
        if attention_mask is not None:
            return sequence_logprobs(self.lm, input_ids, attention_mask, chunk_size=chunk_size)
        if sample is not None:
            return sample_strided(self.lm, input_ids, masks.layout, sample, generator, masks)
        if gen_tokens is None:
            return teacher_forced_logprobs(self.lm, input_ids, masks, chunk_size=chunk_size)
        return strided_logprobs(
            self.lm,
            input_ids,
            gen_tokens,
            masks,
            temperature=temperature,
            mode=mode,
            chunk_size=chunk_size,
            with_entropy=with_entropy,
        )


def as_policy_module(policy: torch.nn.Module) -> torch.nn.Module:
    """A StridedPolicy (possibly already wrapped by DDP/FSDP) as is; a bare language model wrapped in one."""
    return policy if isinstance(core_model(policy), StridedPolicy) else StridedPolicy(policy)


def language_model(policy: torch.nn.Module) -> torch.nn.Module:
    """The language model inside a (wrapped) StridedPolicy, for sampling without gradients."""
    inner = core_model(policy)
    return inner.lm if isinstance(inner, StridedPolicy) else inner
