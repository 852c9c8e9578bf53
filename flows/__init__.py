"""Prefect flows: thin wiring of components into the pipeline's stages (added with the orchestration work)."""
