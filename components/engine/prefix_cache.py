"""The KV cache of the cached training forward, made to survive activation checkpointing.

The cached forward runs the chunk once (pass 1) and then the generated segment against the chunk's keys and values
(pass 2). A plain ``DynamicCache`` appends on every ``update``; under activation checkpointing each layer runs again
during backward, and a second append would hand the replay the wrong keys, so HF drops the cache of checkpointed
layers altogether. ``PrefixCache`` makes both passes replay-safe instead: in pass 1 a layer's update *stores* the
chunk's keys and values (the pass starts empty, so storing is what appending would give), in pass 2 it returns the
stored prefix joined with the new keys and stores nothing. Running a layer twice then changes nothing, and
``replay_safe`` tells HF's checkpointed layers to keep the cache. Gradients reach the chunk through the stored keys:
non-reentrant checkpointing recomputes whatever they depend on (docs/method.md §2).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer


class PrefixLayer(DynamicLayer):
    reading = False  # False: pass 1 (store), True: pass 2 (prefix + new, nothing stored)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.reading:
            return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)
        self.keys, self.values = key_states, value_states
        return self.keys, self.values


class PrefixCache(DynamicCache):
    """Pass 1's cache (it stores); ``for_samples`` gives pass 2's (it reads). Each checkpointed layer replays with
    the cache object it first ran with, so the two must be separate objects."""

    def __init__(self, config):
        super().__init__(config=config)
        self.layers = [PrefixLayer() for _ in self.layers]

    def for_samples(self, repeats: int) -> PrefixCache:
        """Pass 2's cache: one copy of the chunk's keys and values per sample, only read."""
        reader = copy.copy(self)
        reader.layers = []
        for stored in self.layers:
            layer = PrefixLayer()
            layer.lazy_initialization(stored.keys, stored.values)
            layer.keys = stored.keys.repeat_interleave(repeats, dim=0)
            layer.values = stored.values.repeat_interleave(repeats, dim=0)
            layer.reading = True
            reader.layers.append(layer)
        return reader


@contextmanager
def replay_safe(model: torch.nn.Module) -> Iterator[None]:
    """Checkpointed decoder layers keep a PrefixCache while this is open (HF would otherwise set it to None)."""
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache  # back to the class's False
