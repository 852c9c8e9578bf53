"""Parameter presets: partial params files under presets/ (the paper's three tasks and a tiny one for tests).

python -m components.params.presets list
python -m components.params.presets show translation          # the preset merged over params.yaml, validated
python -m components.params.presets apply translation         # write that into params.yaml
eval dvc exp run $(python -m components.params.presets flags translation)   # an experiment, params.yaml untouched
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from components.data.atomic_io import atomic_write_text
from components.params.loading import ParamsError, deep_merge, read_params_file, read_yaml, validate_params

PRESET_DIR = Path(__file__).resolve().parents[2] / "presets"


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        raise ParamsError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return read_yaml(path) or {}


def apply_preset(params: dict[str, Any], name: str) -> dict[str, Any]:
    """``params`` with the preset on top; validated, so a preset never produces an invalid params file."""
    merged = deep_merge(params, load_preset(name))
    validate_params(merged, f"params + preset {name!r}")
    return merged


def set_flags(name: str) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run`` that apply the preset, one per leaf key."""
    flags: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else key, sub)
        else:
            # JSON is a subset of YAML (how DVC parses -S values) and keeps newlines escaped on one line.
            flags.extend(["-S", f"{prefix}={json.dumps(value)}"])

    walk("", load_preset(name))
    return flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "show", "apply", "flags"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(available_presets()))
        return
    if not args.name:
        parser.error(f"{args.command} needs a preset name; available: {', '.join(available_presets())}")
    if args.command == "flags":
        print(" ".join(shlex.quote(f) for f in set_flags(args.name)))
        return
    params_path = Path(args.params)
    current = read_params_file(params_path) if params_path.exists() else {}
    merged = apply_preset(current, args.name)
    text = yaml.safe_dump(merged, sort_keys=False)
    if args.command == "show":
        sys.stdout.write(text)
        return
    header = f"# preset {args.name} applied by `python -m components.params.presets apply {args.name}`\n"
    atomic_write_text(params_path, header + text)
    print(f"{params_path}: preset {args.name!r} applied")


if __name__ == "__main__":
    try:
        main()
    except ParamsError as err:
        sys.exit(str(err))
