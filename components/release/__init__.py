"""From trained model to consumers: MLflow tracking, the model registry and its aliases, lineage tags, the promotion
gate (``release.promotion``), the pipeline report and the one-run-per-project lock."""
