"""The rooms of components/ import one way (pyproject.toml [tool.importlinter]); a wrong-way import fails, named."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.project import ROOT

LINT = Path(sys.executable).parent / "lint-imports"


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(tree)}  # the copy's packages, not the installed project's
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def lint_with_import(tmp_path: Path, module: str, statement: str) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the code in which ``module`` (a path under components/) gains ``statement``."""
    for name in ("components", "flows"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "components" / module
    path.write_text(path.read_text() + f"\n{statement}  # noqa: E402\n")
    return lint(tmp_path)


def test_the_project_keeps_its_layer_contracts():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_library_code_importing_params_is_refused_with_the_import_named(tmp_path):
    done = lint_with_import(tmp_path, "engine/masks.py", "from components.params.schema import Params")
    assert done.returncode == 1
    assert "BROKEN" in done.stdout and "components.engine.masks -> components.params.schema" in done.stdout


def test_rooms_on_one_level_stay_independent(tmp_path):
    done = lint_with_import(tmp_path, "training/trainer.py", "from components.evaluation import pass_at_k")
    assert done.returncode == 1
    assert "Training and evaluation do not import each other BROKEN" in " ".join(done.stdout.split())
