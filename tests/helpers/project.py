"""The tiny project that stage and scenario tests run on: its params (the tiny preset) and working folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from components.params.loading import deep_merge
from components.params.presets import apply_preset

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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


def run(cmd, cwd, env, timeout=900, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done


def new_dvc_project(root: Path, params: dict, add_data: list[str]) -> dict[str, str]:
    """A user's project as a fresh clone gives it: the code, ``params``, a git repository with DVC initialised, and
    the data brought in by ``add_data`` (a dvc command's arguments, e.g. ``import-url SRC inputs/data/x.jsonl``),
    all committed. Returns the environment to run its commands in (this venv first on PATH, no ambient MLflow)."""
    for name in ("components", "flows", "presets", "infra", "inputs"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", "requirements.lock"):
        shutil.copy(ROOT / name, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "EBFT_ASSET_CACHE": str(root / ".assets")}
    env.pop("MLFLOW_TRACKING_URI", None)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "ci@example.invalid"],
                ["git", "config", "user.name", "ci"], [str(BIN / "dvc"), "init", "-q"],
                [str(BIN / "dvc"), *add_data], ["git", "add", "-A"], ["git", "commit", "-qm", "project"]):  # fmt: skip
        run(cmd, root, env)
    return env
