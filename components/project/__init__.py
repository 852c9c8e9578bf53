"""The DVC project around the library: the ``inputs/`` area where the user's data and models live, and each stage's
code as derived from the import graph (dvc.yaml deps and the checkpoint fingerprint)."""
