"""The stage graph under real DVC, in a temporary git repository with the tiny preset: `dvc repro` builds the base
model, the data, the feature cache, the trained models and the evaluation; a second repro is a no-op; an evaluation
param reruns only evaluate; a training param reruns train and evaluate; a data param reruns everything but
base_model."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.presets import apply_preset

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for name in ("components", "flows", "presets"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    params = apply_preset(yaml.safe_load((ROOT / "params.yaml").read_text()), "tiny")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "EBFT_ASSET_CACHE": str(root / ".assets")}
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "ci@example.invalid"],
        ["git", "config", "user.name", "ci"],
        [str(BIN / "dvc"), "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "pipeline"],
    ):
        run(cmd, root, env)
    return root, env


def dvc(repo, *args: str) -> str:
    root, env = repo
    return run([str(BIN / "dvc"), *args], root, env)


def set_param(repo, dotted: str, value) -> None:
    path = repo[0] / "params.yaml"
    params = yaml.safe_load(path.read_text())
    node = params
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def stages_run(output: str) -> set[str]:
    return {s for s in ("base_model", "prepare", "features", "train", "evaluate") if f"Running stage '{s}'" in output}


def test_repro_builds_then_skips_then_reruns_exactly_what_changed(repo):
    root, _ = repo
    assert stages_run(dvc(repo, "repro")) == {"base_model", "prepare", "features", "train", "evaluate"}
    for path in ("models/base/config.json", "models/tokenizer/tokenizer.json", "data/train.safetensors",
                 "data/val.jsonl", "features/index.json", "models/trained/ebft/model.safetensors",
                 "models/trained/sft/model.safetensors", "metrics/train_curves/ebft.csv", "eval/ebft/code.jsonl",
                 "metrics/comparison.md", "metrics/plots/alignment_distribution.png"):  # fmt: skip
        assert (root / path).exists(), path
    card = json.loads((root / "metrics/data_card.json").read_text())
    assert card["splits"]["train"]["chunks"] == 8 and card["splits"]["val"]["chunks"] == 4
    assert card["splits"]["train"]["documents_in_chunks"] >= 8  # spread over the stream: a file per chunk or more
    assert card["source_fingerprint"]["stdlib"] and card["tokenizer_sha256"]
    metrics = dvc(repo, "metrics", "show")
    assert "data_card.json" in metrics and "train.json" in metrics and "eval.json" in metrics

    second = dvc(repo, "repro")
    assert stages_run(second) == set() and "up to date" in second

    set_param(repo, "eval.feature_samples", 2)
    assert stages_run(dvc(repo, "repro")) == {"evaluate"}

    set_param(repo, "train.loss.ce_coef", 0.1)
    assert stages_run(dvc(repo, "repro")) == {"train", "evaluate"}

    set_param(repo, "tracking.experiment", "renamed")  # where runs are recorded is not a reason to retrain
    assert stages_run(dvc(repo, "repro")) == set()

    set_param(repo, "data.val_fraction", 0.3)
    status = dvc(repo, "status")
    assert "prepare" in status and "base_model" not in status
    assert stages_run(dvc(repo, "repro")) == {"prepare", "features", "train", "evaluate"}
