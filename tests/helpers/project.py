"""The tiny project that stage and scenario tests run on: its params (the tiny preset) and working folders."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.params.loading import deep_merge
from components.params.presets import apply_preset

ROOT = Path(__file__).resolve().parents[2]


def write_params(path: Path, overrides: dict | None = None) -> Path:
    params = apply_preset(yaml.safe_load((ROOT / "params.yaml").read_text()), "tiny")
    params = deep_merge(params, overrides or {})
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def link_inputs(project: Path, folder: Path) -> Path:
    """Make ``folder`` a working folder over ``project``'s read-only inputs (outputs stay in ``folder``)."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    for name in ("data", "features", "models/base", "models/tokenizer"):
        (folder / name).symlink_to((project / name).resolve())
    return folder
