"""The project's ``inputs/`` area: the user's own data and local models, as inputs DVC sees and versions.

    inputs/data/     data files or folders (jsonl, a HF ``save_to_disk`` folder): the ``prepare`` stage depends on it
    inputs/models/   local model folders (``model.base``, ``features.network``): ``base_model`` and ``features`` do

Because the stages depend on these folders, a change of their content, and only that, reruns the stages after them.
Each input is tracked by DVC: ``dvc add`` for data that lives here, ``dvc import-url`` (or ``dvc import`` from a DVC
data registry) for data that lives elsewhere. Before the stages run, the pipeline calls :func:`refresh`, which brings
imports up to date with their source (``dvc update``) and records what was dropped or edited here as a new DVC
version (``dvc add``), so every model is trained on a data version that is in the DVC cache (and the remote). A local
path outside these folders is refused (:func:`check_inside_inputs`): DVC would not see it change, and new data there
would never retrain. See README "Your own data and model".
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

AREAS = {"data": Path("inputs/data"), "models": Path("inputs/models")}


class InputsError(ValueError):
    """A local input lies outside inputs/, where DVC cannot see it change."""


def _looks_local(spec: str) -> bool:
    return Path(spec).exists() or spec.startswith((".", "/", "~", "inputs/"))


def local_inputs(params) -> list[tuple[str, str, str]]:
    """(params key, path, area) for every local file or folder the stages read, given validated ``Params``."""
    found = []
    data = params.data
    if data.source == "jsonl":
        found += [(f"data.paths[{i}]", p, "data") for i, p in enumerate(data.paths)]
    if data.source == "hf" and data.hf_dataset and _looks_local(data.hf_dataset):
        found.append(("data.hf_dataset", data.hf_dataset, "data"))
    if not params.model.base.startswith("tiny:") and _looks_local(params.model.base):
        found.append(("model.base", params.model.base, "models"))
    if params.features.network != "base" and _looks_local(params.features.network):
        found.append(("features.network", params.features.network, "models"))
    return found


def _fixed_prefix(spec: str) -> str:
    """The part of a path before its first glob character (``inputs/data/*.jsonl`` -> ``inputs/data``)."""
    parts = Path(os.path.expanduser(spec)).parts
    first_glob = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
    return str(Path(*parts[:first_glob])) if first_glob else "."


def check_inside_inputs(params, root: Path) -> None:
    """Refuse local inputs outside their inputs/ area, naming each key, its path and how to move it."""
    problems = []
    for key, spec, area in local_inputs(params):
        where = Path(os.path.abspath(root / _fixed_prefix(spec)))
        home = Path(os.path.abspath(root / AREAS[area]))
        if where != home and home not in where.parents:
            name = Path(_fixed_prefix(spec)).name or "input"
            problems.append(
                f"{key}={spec!r} is outside {AREAS[area]}/, so DVC cannot see it change and new data there would "
                f"never retrain. Bring it in: `dvc import-url {where} {AREAS[area]}/{name}` (refreshed on every "
                f"pipeline run), or copy it there and `dvc add {AREAS[area]}/{name}`; then set {key} to that path"
            )
    if problems:
        raise InputsError("\n".join(problems))


@dataclass
class RefreshReport:
    updated: list[str] = field(default_factory=list)  # imports whose source had changed
    new_versions: list[str] = field(default_factory=list)  # tracked inputs edited in place
    newly_tracked: list[str] = field(default_factory=list)  # files or folders that arrived untracked
    behind: list[str] = field(default_factory=list)  # data older than its .dvc file (left for `dvc pull`)

    @property
    def changed(self) -> bool:
        return bool(self.updated or self.new_versions or self.newly_tracked)

    def summary(self) -> str:
        stale = f" ({', '.join(self.behind)} behind its .dvc file: `dvc pull` restores it)" if self.behind else ""
        if not self.changed:
            return "inputs: nothing new" + stale
        parts = [
            f"{label}: {', '.join(paths)}"
            for label, paths in (
                ("updated from their source", self.updated),
                ("new versions", self.new_versions),
                ("now tracked", self.newly_tracked),
            )
            if paths
        ]
        return "inputs: " + "; ".join(parts) + stale


def _dvc(root: Path, dvc: str, *args: str) -> str:
    done = subprocess.run([dvc, *args], cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")
    return done.stdout


def _untracked(root: Path) -> list[str]:
    """Files and folders under the areas that neither git nor DVC tracks (new arrivals)."""
    if not (root / ".git").exists():
        return []
    listed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=normal", "--", *map(str, AREAS.values())],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    paths = [line[3:].strip().strip('"').rstrip("/") for line in listed.splitlines() if line.startswith("?? ")]
    return [p for p in paths if not p.endswith(".dvc") and Path(p).name != ".gitignore"]


def _newest_mtime(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=path.stat().st_mtime)


def _modified_outputs(root: Path, dvc: str, dvc_files: list[Path]) -> dict[Path, Path]:
    """.dvc file -> its output, for outputs that exist and differ from what the file records (`dvc status`)."""
    status = _dvc(root, dvc, "status", "--json", *(str(f.relative_to(root)) for f in dvc_files))
    modified = {}
    for name, changes in json.loads(status or "{}").items():
        for change in changes:
            for out, state in change.get("changed outs", {}).items() if isinstance(change, dict) else []:
                if state == "modified":
                    modified[root / name] = root / out
    return modified


def refresh(root: Path, dvc: str = "dvc") -> RefreshReport:
    """Bring every input up to date and record it as a DVC version; returns what changed (nothing, mostly)."""
    report = RefreshReport()
    dvc_files = sorted(f for area in AREAS.values() for f in (root / area).rglob("*.dvc"))
    before = {f: f.read_bytes() for f in dvc_files}
    specs = {f: yaml.safe_load(before[f]) or {} for f in dvc_files}
    imports = [f for f in dvc_files if specs[f].get("deps")]
    if imports:
        _dvc(root, dvc, "update", *(str(f.relative_to(root)) for f in imports))
        report.updated = [str(f.relative_to(root)) for f in imports if f.read_bytes() != before[f]]
    tracked = [f for f in dvc_files if f not in imports]
    modified = _modified_outputs(root, dvc, tracked) if tracked else {}
    present, behind = [], []
    for f, path in modified.items():
        # A .dvc file newer than its data was moved by git (a teammate's new version): the data is behind it and
        # `dvc pull` brings it; re-adding the old data would silently undo their version.
        (behind if _newest_mtime(path) < f.stat().st_mtime else present).append(str(path.relative_to(root)))
    report.behind = behind
    arrived = _untracked(root)
    if present or arrived:
        _dvc(root, dvc, "add", "--quiet", *present, *arrived)
        report.new_versions = [
            str(f.relative_to(root)).removesuffix(".dvc")
            for f in dvc_files
            if f not in imports and f.read_bytes() != before[f]
        ]
        report.newly_tracked = arrived
    return report
