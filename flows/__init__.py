"""Prefect flows and the stage entry points DVC runs: thin wiring of components/ into the pipeline."""
