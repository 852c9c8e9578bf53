"""Each stage's code deps in dvc.yaml are exactly the code it imports (so `dvc repro` sees every code change and only
those), and the training checkpoint fingerprint hashes the same files."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.project.code_deps import STAGES, code_files, dvc_yaml_problems
from tests.helpers.project import ROOT


def test_every_stage_lists_exactly_the_code_it_imports():
    assert dvc_yaml_problems(ROOT / "dvc.yaml") == []


def test_the_engine_and_the_lock_are_deps_of_training_and_the_harness_of_evaluation():
    train = code_files("train")
    for module in ("engine/forward", "engine/masks", "engine/layout", "engine/token_logprobs", "engine/causal_lm",
                   "method/feature_network", "params/schema"):  # fmt: skip
        assert f"components/{module}.py" in train
    assert "requirements.lock" in train and "flows/train.py" in train
    evaluate = code_files("evaluate")
    harness = {
        "components/data/offline_sources.py",
        "components/engine/sampler.py",
        "components/evaluation/sandbox_harness.py",
    }
    assert harness <= set(evaluate)
    assert all(len(code_files(stage)) == len(set(code_files(stage))) for stage in STAGES)


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the project's code, dvc.yaml and lock, to edit."""
    for name in ("components", "flows"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "requirements.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def in_tree(tree: Path, code: str) -> str:
    """Run ``code`` against the copy (a fresh interpreter: the import graph is the copy's)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_new_import_is_reported_by_check_and_written_by_write(tree):
    (tree / "components/extra_reward.py").write_text("SCALE = 2.0\n")
    train = tree / "flows/train.py"
    future = "from __future__ import annotations\n"
    train.write_text(train.read_text().replace(future, future + "\nfrom components import extra_reward\n", 1))
    check = subprocess.run([sys.executable, "-m", "components.project.code_deps", "check"], cwd=tree,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert check.returncode == 1 and "stage train: missing components/extra_reward.py" in check.stderr
    assert "stage evaluate" not in check.stderr  # evaluate does not import flows.train
    in_tree(tree, "from components.project.code_deps import write_dvc_yaml; write_dvc_yaml()")
    text = (tree / "dvc.yaml").read_text()
    assert "      - components/extra_reward.py\n" in text and "# The stage graph" in text  # comments survive
    problems = "from components.project.code_deps import dvc_yaml_problems; print(dvc_yaml_problems())"
    assert in_tree(tree, problems) == "[]"


def test_the_checkpoint_fingerprint_changes_exactly_with_the_train_stages_code(tree):
    hash_train = "from components.project.code_deps import code_hash; print(code_hash('train'))"
    before = in_tree(tree, hash_train)
    assert before == in_tree(tree, hash_train)
    pass_at_k = tree / "components/evaluation/pass_at_k.py"
    pass_at_k.write_text(pass_at_k.read_text() + "# eval only\n")
    assert in_tree(tree, hash_train) == before  # evaluation code does not invalidate a training checkpoint
    logprobs = tree / "components/engine/token_logprobs.py"
    logprobs.write_text(logprobs.read_text() + "# edited\n")
    assert in_tree(tree, hash_train) != before


def test_preparing_data_does_not_depend_on_model_training_or_release_code():
    """Settings live apart from the code that uses them, so an edit to the engine, the method, the trainer, the
    evaluation or the gate does not rerun base_model or prepare (and with them everything else)."""
    model_code = {"engine/forward.py", "engine/masks.py", "engine/sampler.py", "method/ebft_step.py",
                  "method/rewards.py", "training/trainer.py", "evaluation/sandbox.py", "release/promotion/gate.py",
                  "release/registry.py"}  # fmt: skip
    for stage in ("base_model", "prepare"):
        assert not {f"components/{m}" for m in model_code} & set(code_files(stage)), stage
