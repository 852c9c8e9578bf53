"""The EBFT method on top of the engine (docs/method.md §3-4): the frozen feature network, whitening, rewards and
RLOO advantages, the loss, one EBFT step and one SFT step, their settings, and the cache of ground-truth features."""
