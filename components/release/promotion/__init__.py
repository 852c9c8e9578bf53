"""The promotion gate: per-example scores, the paired bootstrap, the decision, and registering a version and gating
it against the champion."""
