"""Calling a Hugging Face causal LM the way the strided engine needs it.

The engine always passes an explicit 4D additive mask and position ids, optionally a KV cache, and asks for selected
hidden states instead of logits: the vocabulary projection is applied afterwards, only at the positions that need it
and in chunks (``token_logprobs``), so full-vocabulary logits are never materialised for a whole sequence.
The model is always called through its own (possibly DDP/PEFT-wrapped) ``forward`` so distributed gradient hooks fire.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache, PretrainedConfig

HiddenLayers = Sequence[int] | bool


def core_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP/accelerate wrappers (PEFT models are left as they are: they forward everything)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def lm_config(model: torch.nn.Module) -> PretrainedConfig:
    return core_model(model).config


def num_hidden_states(model: torch.nn.Module) -> int:
    """Length of the hidden-states tuple: the embeddings plus one per layer."""
    return lm_config(model).num_hidden_layers + 1


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(core_model(model).parameters()).dtype


def compute_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype activations (and so attention masks) have: the autocast dtype inside autocast, else the weights'."""
    device_type = model_device(model).type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return model_dtype(model)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(core_model(model).parameters()).device


def new_cache(model: torch.nn.Module) -> DynamicCache:
    return DynamicCache(config=lm_config(model))


def hidden_states(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    *,
    cache: DynamicCache | None = None,
    layers: HiddenLayers = (-1,),
    use_cache: bool | None = None,
) -> tuple[torch.Tensor | None, ...]:
    """One forward; returns the hidden-states tuple (index 0 = embeddings, -1 = final normed state).

    ``layers`` selects which entries are kept (others are None) or ``True`` for all. A given ``cache`` is extended
    in place with the keys/values of ``input_ids``: the attention layers update any cache they are given, and
    ``use_cache`` (default: a cache is given) only says whether the model hands it back.
    """
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions.expand(input_ids.shape[0], -1),
        past_key_values=cache,
        use_cache=cache is not None if use_cache is None else use_cache,
        logits_to_keep=1,  # the head runs later, only where needed
        output_hidden_states=layers if isinstance(layers, bool) else list(layers),
    )
    return out.hidden_states


def logit_head(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Final hidden states -> logits, as the model's own forward computes them."""
    core = core_model(model)
    head = core.get_output_embeddings()
    softcap = getattr(core.config, "final_logit_softcapping", None)
    if softcap is None:
        return head

    def capped(h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(head(h) / softcap) * softcap

    return capped


@torch.no_grad()
def check_logit_head(model: torch.nn.Module, atol: float = 1e-3) -> None:
    """Refuse a model whose logits are not ``logit_head(final hidden state)`` (e.g. an unknown logit scaling)."""
    core = core_model(model)
    device = model_device(model)
    ids = torch.arange(1, 5, device=device)[None] % lm_config(model).vocab_size
    out = core(input_ids=ids, output_hidden_states=True)
    ours = logit_head(model)(out.hidden_states[-1]).float()
    diff = (ours - out.logits.float()).abs().max().item()
    if diff > atol:
        raise NotImplementedError(
            f"{type(core).__name__}: logits differ from output_embeddings(final hidden state) by {diff:.3g}; "
            "this architecture post-processes its logits in a way the strided engine does not reproduce"
        )
