"""Everything before a model runs: document sources (the user's files and the offline assets), packing into chunks
with document ids and answer masks, the chunk store, resolving and loading models, tiny test models, the order in
which training steps visit chunks, and atomic writes."""
