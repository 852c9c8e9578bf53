"""The strided block-parallel engine (docs/method.md §2): layout and masks of nested-prefix blocks, calling a causal
LM with them, token log-probs and sampling, the KV-cached sampler and its dense reference, the strided training
forward, and the policy as one module. It knows nothing of features, rewards or data files."""
