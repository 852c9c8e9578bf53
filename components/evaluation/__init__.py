"""Scoring models on things other than the training reward: validation CE, feature matching, evaluation decoding,
code tasks run in the sandbox with pass@k, translation BLEU/chrF, and the comparison table and plots."""
