"""What code each pipeline stage runs, derived from the import graph, so DVC deps and checkpoints cannot drift.

A stage is ``flows/<stage>.py``; its code is that module and every project module it imports, directly or through
others, at any depth and from inside functions too (grimp reads the import statements; nothing is executed). The
package ``__init__.py`` files on the way count too. Third-party code is pinned by requirements.lock, which every stage
depends on as well. dvc.yaml lists exactly these files as each stage's code deps (so `dvc repro` reruns a stage when
any of them changes, and only then), and the training checkpoint fingerprint hashes the same files.

    python -m components.project.code_deps check     # names every stage whose dvc.yaml code deps differ; exit 1 if any
    python -m components.project.code_deps write     # rewrite the code deps in dvc.yaml, comments kept   (make deps)
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from functools import cache
from pathlib import Path

from components.data.atomic_io import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("components", "flows")
LOCK = "requirements.lock"
STAGES = ("base_model", "prepare", "features", "train", "evaluate")


@cache
def _graph():
    import grimp

    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _module_file(module: str, root: Path) -> str:
    base = root / module.replace(".", "/")
    path = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
    if not path.exists():
        raise FileNotFoundError(f"module {module} has no source file under {root}")
    return path.relative_to(root).as_posix()


def stage_modules(stage: str) -> set[str]:
    """The stage's entry module, every project module it imports transitively, and their packages."""
    entry = f"flows.{stage}"
    modules = {entry, *_graph().find_upstream_modules(entry)}
    packages = {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}
    return modules | packages


def code_files(stage: str, root: Path = ROOT) -> list[str]:
    """Paths (relative to the project, sorted) of the stage's code, then requirements.lock."""
    return [*sorted(_module_file(m, root) for m in stage_modules(stage)), LOCK]


def code_hash(stage: str, root: Path = ROOT) -> str:
    """sha256 over the stage's code files (path and content): changes exactly when DVC reruns the stage for code."""
    digest = hashlib.sha256()
    for rel in code_files(stage, root):
        digest.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return digest.hexdigest()


def _is_code(dep: str) -> bool:
    return dep.endswith(".py") or dep == LOCK


def _load(dvc_yaml: Path):
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments and key order survive a rewrite
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml, yaml.load(dvc_yaml.read_text())


def dvc_yaml_problems(dvc_yaml: Path = ROOT / "dvc.yaml") -> list[str]:
    """One line per stage whose code deps in dvc.yaml are not exactly what it imports."""
    _, spec = _load(dvc_yaml)
    root = dvc_yaml.resolve().parent
    problems = []
    for stage in STAGES:
        listed = {d for d in spec["stages"][stage].get("deps", []) if _is_code(d)}
        derived = set(code_files(stage, root))
        missing, extra = sorted(derived - listed), sorted(listed - derived)
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"not imported {', '.join(extra)}"] if extra else []
            )
            problems.append(f"stage {stage}: {'; '.join(parts)}")
    return problems


def write_dvc_yaml(dvc_yaml: Path = ROOT / "dvc.yaml") -> bool:
    """Set each stage's code deps to what it imports (its data deps stay, after them); True if the file changed."""
    yaml, spec = _load(dvc_yaml)
    root = dvc_yaml.resolve().parent
    for stage in STAGES:
        deps = spec["stages"][stage]["deps"]
        data = [d for d in deps if not _is_code(d)]
        deps[:] = code_files(stage, root) + data  # in place: the list keeps its comments and style
    from io import StringIO

    out = StringIO()
    yaml.dump(spec, out)
    changed = out.getvalue() != dvc_yaml.read_text()
    if changed:
        atomic_write_text(dvc_yaml, out.getvalue())
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "write", "show"])
    parser.add_argument("--dvc-yaml", type=Path, default=ROOT / "dvc.yaml")
    args = parser.parse_args(argv)
    if args.command == "show":
        for stage in STAGES:
            print(f"{stage}: {' '.join(code_files(stage))}")
    elif args.command == "check":
        problems = dvc_yaml_problems(args.dvc_yaml)
        if problems:
            sys.exit("dvc.yaml's code deps differ from the imports (run `make deps`):\n  " + "\n  ".join(problems))
        print(f"{args.dvc_yaml}: every stage's code deps match its imports")
    else:
        changed = write_dvc_yaml(args.dvc_yaml)
        print(f"{args.dvc_yaml}: {'code deps rewritten' if changed else 'already up to date'}")


if __name__ == "__main__":
    main()
