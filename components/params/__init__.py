"""params.yaml: the schema that composes every room's settings, loading with clear errors, presets, and a run's
``--set`` overrides."""
