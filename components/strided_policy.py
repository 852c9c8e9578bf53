"""The trainable policy as one ``nn.Module``: a single ``forward`` covers the chunk and the generated segments.

DDP and FSDP expect one forward call per backward and the vocabulary projection inside that forward (FSDP gathers
sharded weights only there). The strided training forward calls the language model twice (chunk into the KV cache,
then the generated tokens) and applies the head afterwards, so it runs inside this module, which accelerate wraps.
"""

from __future__ import annotations

import torch

from components.causal_lm import core_model
from components.strided_forward import ForwardMode, StridedLogprobs, strided_logprobs, teacher_forced_logprobs
from components.strided_masks import StridedMasks


class StridedPolicy(torch.nn.Module):
    def __init__(self, lm: torch.nn.Module):
        super().__init__()
        self.lm = lm

    def forward(
        self,
        input_ids: torch.Tensor,
        masks: StridedMasks,
        gen_tokens: torch.Tensor | None = None,
        *,
        temperature: float = 1.0,
        mode: ForwardMode = "cached",
        chunk_size: int = 1024,
        with_entropy: bool = False,
    ) -> StridedLogprobs | torch.Tensor:
        """With ``gen_tokens``: the EBFT forward (StridedLogprobs). Without: teacher-forced log-probs (B, L-1)."""
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
