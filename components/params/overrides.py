"""Overrides of params.yaml for one run (``--set train.steps=100``), written into params.yaml itself.

The stages read params.yaml and DVC tracks it, so an override reaches the stages, `dvc status` and the lineage only
by being written there, exactly as `dvc exp run -S` does: the run that used it leaves it in params.yaml (comments and
layout kept), where `git diff params.yaml` shows it. Overrides are validated over the current file before anything is
written: a wrong key or value names it and what is allowed, and params.yaml is left untouched.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import yaml

from components.data.atomic_io import atomic_write_text
from components.params.loading import ParamsError, deep_merge, read_params_file, validate_params
from components.params.schema import Params


def parse_set_flags(flags: list[str]) -> dict[str, Any]:
    """``["train.steps=100", "data.paths=[a.jsonl]"]`` -> ``{"train.steps": 100, ...}``; values are YAML, as in DVC."""
    overrides: dict[str, Any] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"--set {flag!r}: expected KEY=VALUE with a dotted key, e.g. train.steps=100")
        overrides[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return overrides


def nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys -> nested mappings (``{"train.steps": 3}`` -> ``{"train": {"steps": 3}}``)."""
    tree: dict[str, Any] = {}
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def with_overrides(path: Path, overrides: dict[str, Any]) -> Params:
    """The params ``path`` would hold with ``overrides`` applied, validated (nothing is written)."""
    raw = read_params_file(path)
    return validate_params(deep_merge(raw, nested(overrides)), f"{path} with overrides {overrides}")


def apply_overrides(path: Path, overrides: dict[str, Any]) -> list[str]:
    """Validate, then write ``overrides`` into ``path`` (atomically, comments kept); returns ``key: old -> new`` lines
    for the values that changed."""
    if not overrides:
        return []
    with_overrides(path, overrides)  # raises, naming the bad key, before anything is written
    from ruamel.yaml import YAML

    rt = YAML()
    rt.width = 4096
    doc = rt.load(path.read_text())
    changes = []
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = doc
        for part in parents:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        old = node.get(leaf, "(default)")
        if old != value:
            node[leaf] = value
            changes.append(f"{dotted}: {old} -> {value}")
    if changes:
        out = StringIO()
        rt.dump(doc, out)
        atomic_write_text(path, out.getvalue())
    return changes
