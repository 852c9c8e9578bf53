"""The frozen feature network φ (docs/method.md §3): block embeddings from hidden states.

Features of a block = selected hidden layers at the block's G token positions -> per-token L2 normalisation ->
pooling over the G tokens. The generated block's tokens see the chunk prefix and the block itself; the ground-truth
block's tokens see the same prefix, so ground-truth features need only a plain causal forward over the chunk. That
standalone path is what the feature-cache stage stores, and it gives exactly the strided forward's values.
"""

from __future__ import annotations

import copy

import torch

from components.engine.causal_lm import core_model, num_hidden_states
from components.engine.config import ForwardMode
from components.engine.forward import generated_logprobs, prompt_hidden_states, strided_hidden_states
from components.engine.masks import StridedMasks
from components.method.config import FeatureConfig, LayerChoice

AVERAGED = ("middle", "mean")  # choices whose layers are averaged, not concatenated


def resolve_layers(choice: LayerChoice | list[int], n_hidden: int) -> list[int]:
    """Indices into the hidden-states tuple (length ``n_hidden`` = layers + 1, 0 = embeddings) that ``choice`` names.

    As in the authors' code: 'middle' averages hidden states n//2 and n//2 + 1, 'mean' averages the n layers'
    outputs (the embeddings excluded), 'quartiles' concatenates those at 25/50/75% depth."""
    n_layers = n_hidden - 1
    if choice == "last":
        return [n_hidden - 1]
    if choice == "middle":
        return [n_layers // 2, min(n_layers // 2 + 1, n_layers)]
    if choice == "quartiles":
        return [n_layers // 4, n_layers // 2, (3 * n_layers) // 4]
    if choice == "mean":
        return list(range(1, n_hidden))
    if not choice:
        raise ValueError("features.layers: an explicit layer list must not be empty")
    bad = [i for i in choice if not -n_hidden <= i < n_hidden]
    if bad:
        raise ValueError(
            f"features.layers={choice}: the feature network has hidden states 0..{n_hidden - 1} "
            f"(embeddings + {n_layers} layers); {bad} do not exist"
        )
    return [i % n_hidden for i in choice]


class FeatureNetwork:
    """A frozen model and the recipe that turns its hidden states into block features."""

    def __init__(self, model: torch.nn.Module, config: FeatureConfig):
        self.model = model.eval().requires_grad_(False)
        self.config = config
        self.layers = resolve_layers(config.layers, num_hidden_states(model))

    @classmethod
    def frozen_copy_of(cls, policy: torch.nn.Module, config: FeatureConfig) -> FeatureNetwork:
        """The paper's default: a frozen copy of the (initial) policy."""
        return cls(copy.deepcopy(core_model(policy)), config)

    @property
    def token_dim(self) -> int:
        """Width d of one token's feature vector (a block feature is d, or G*d with 'concat' pooling)."""
        width = core_model(self.model).config.hidden_size
        return width if self.averaged else width * len(self.layers)

    @property
    def averaged(self) -> bool:
        return isinstance(self.config.layers, str) and self.config.layers in AVERAGED

    def _request(self) -> list[int]:
        return self.layers

    def token_features(self, hidden: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
        """Selected layers -> per-token feature vectors (..., T, d) in fp32, normalised as configured."""
        picked = [hidden[i].float() for i in self.layers]
        if self.config.token_norm == "per_layer":
            picked = [torch.nn.functional.normalize(h, dim=-1) for h in picked]
        feats = torch.stack(picked).mean(0) if self.averaged else torch.cat(picked, dim=-1)
        if self.config.token_norm == "joint":
            feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats

    def pool(self, block_tokens: torch.Tensor) -> torch.Tensor:
        """(..., G, d) token features of blocks -> (..., D) block features ((..., G, d) for 'token')."""
        pooling = self.config.pooling
        if pooling == "last_token":
            return block_tokens[..., -1, :]
        if pooling == "mean":
            return block_tokens.mean(dim=-2)
        if pooling == "concat":
            return block_tokens.flatten(-2)
        return block_tokens

    @torch.no_grad()
    def ground_truth_features(self, input_ids: torch.Tensor, masks: StridedMasks) -> torch.Tensor:
        """Features of every ground-truth block, (B, NB, D), from a plain causal forward over the chunks."""
        feats = self.token_features(prompt_hidden_states(self.model, input_ids, masks, self._request()))
        return self._ground_truth_blocks(feats, masks)

    @torch.no_grad()
    def strided_features(
        self, input_ids: torch.Tensor, gen_tokens: torch.Tensor, masks: StridedMasks, mode: ForwardMode = "cached"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of the generated blocks (B, n, NB, D) and of the ground-truth blocks (B, NB, D)."""
        gen_feats, gt_feats, _ = self._strided(input_ids, gen_tokens, masks, mode, logprob_temperature=None)
        return gen_feats, gt_feats

    @torch.no_grad()
    def strided_features_and_logprobs(
        self, input_ids: torch.Tensor, gen_tokens: torch.Tensor, masks: StridedMasks, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features as ``strided_features``, plus this network's log-probs of the generated tokens (B*n, NB*G) at
        ``temperature``, from the same forward. When the feature network is the frozen base model (the default), these
        are the KL reference's log-probs, for the price of one vocabulary projection instead of another forward."""
        return self._strided(input_ids, gen_tokens, masks, "cached", logprob_temperature=temperature)

    def _strided(self, input_ids, gen_tokens, masks, mode, logprob_temperature):
        request = self._request()
        final = num_hidden_states(self.model) - 1
        if logprob_temperature is not None and request is not True:
            request = sorted({*request, final})
        prompt, gen = strided_hidden_states(self.model, input_ids, gen_tokens, masks, layers=request, mode=mode)
        layout = masks.layout
        gen_blocks = layout.to_block_major(self.token_features(gen), dim=1)  # (B*n, NB, G, d)
        gen_feats = self.pool(gen_blocks)
        gen_feats = gen_feats.reshape(input_ids.shape[0], -1, *gen_feats.shape[1:])
        gt_feats = self._ground_truth_blocks(self.token_features(prompt), masks)
        logprobs = None
        if logprob_temperature is not None:
            logprobs, _ = generated_logprobs(
                self.model, gen_tokens, prompt[final], gen[final], masks, logprob_temperature
            )
        return gen_feats, gt_feats, logprobs

    def _ground_truth_blocks(self, chunk_feats: torch.Tensor, masks: StridedMasks) -> torch.Tensor:
        return self.pool(chunk_feats[:, masks.layout.target_positions(chunk_feats.device)])
