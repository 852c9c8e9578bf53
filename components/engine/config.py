"""Settings of the engine that params.yaml exposes: how continuations are sampled and how the training forward runs.

Kept apart from the code that uses them, so that reading params.yaml imports no model code (and an edit to the engine
does not count as a change of the stages that only validate params).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.settings import Settings

# cached: the chunk once into a KV cache, then every sample's generated tokens against it (L + n·NB·G positions);
# flex: cached, with FlexAttention block masks instead of dense additive masks (flash-style kernels on GPU);
# dense: one chunk + generated sequence per sample with the dense mask (n·(L + NB·G)), the reference layout.
ForwardMode = Literal["cached", "flex", "dense"]


class SamplingConfig(Settings):
    """How continuations are sampled. ``n_samples`` continuations are drawn per block of each chunk."""

    n_samples: int = Field(4, ge=1, description="samples per chunk (n); RLOO needs >= 2, a diversity baseline >= 3")
    temperature: float = Field(0.6, gt=0, description="sampling temperature T; policy log-probs use the same T")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass; 1 disables it")
