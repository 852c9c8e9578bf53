"""The paper's comparison as a user runs it: their own Q&A pairs, the tiny preset with train.methods [ebft, sft, rlvr],
through the pipeline flow (what `make run` runs) in a fresh DVC project. All three train, base and all three are
evaluated side by side (translation chrF/BLEU on the held-out pairs), RLVR is registered because registry.method
says so, and `dvc repro` afterwards has nothing left to do."""

import json
import random

import pytest
import yaml

from components.params.loading import deep_merge
from components.params.presets import apply_preset
from components.release.registry import CHAMPION, ModelRegistry
from tests.helpers.project import BIN, ROOT, new_dvc_project, run
from tests.scenarios.test_rlvr_stage import WORDS

pytestmark = pytest.mark.slow
DATA = "inputs/data/pairs.jsonl"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("three-methods")
    feed = tmp_path_factory.mktemp("upstream") / "pairs.jsonl"
    rng = random.Random(1)
    with open(feed, "w") as f:
        for _ in range(150):
            picked = rng.sample(sorted(WORDS), 2)
            f.write(json.dumps({"de": " ".join(picked), "en": " ".join(WORDS[w] for w in picked)}) + "\n")
    params = deep_merge(apply_preset(yaml.safe_load((ROOT / "params.yaml").read_text()), "tiny"), {
        "data": {"source": "jsonl", "paths": [DATA], "prompt_field": "de", "completion_field": "en",
                 "prompt_template": "de: {prompt} en:", "completion_template": " {completion}", "seq_len": 64,
                 "val_fraction": 0.15, "test_fraction": 0.15, "max_chunks": {"train": 8, "val": 4, "test": 4}},
        "train": {"methods": ["ebft", "sft", "rlvr"], "rlvr": {"max_new_tokens": 8}},
        "eval": {"code": {"tasks": []}, "translation": {"enabled": True, "max_pairs": 8,
                                                        "decoding": {"max_new_tokens": 8}}},
        "registry": {"method": "rlvr"},
    })  # fmt: skip
    env = new_dvc_project(root, params, ["import-url", "-q", str(feed), DATA])
    return root, env


def test_make_run_trains_evaluates_and_registers_all_three_methods(project):
    root, env = project
    out = run([str(BIN / "python"), "-m", "flows.pipeline", "--project", str(root)], root, env).stdout
    assert "EBFT pipeline finished" in out and "champion: ebft-model v1" in out
    text = (root / "reports/latest.md").read_text()
    for stage in ("base_model", "prepare", "features", "train", "evaluate"):
        assert f"| {stage} | ran |" in text, text
    assert set(json.loads((root / "metrics/train.json").read_text())) == {"ebft", "sft", "rlvr"}
    evaluated = json.loads((root / "metrics/eval.json").read_text())
    for model in ("base", "ebft", "sft", "rlvr"):
        assert (root / "eval" / model / "translation.jsonl").exists(), model
    assert "rlvr" in json.dumps(evaluated) and "translation_chrf" in json.dumps(evaluated)
    registry = ModelRegistry(f"sqlite:///{root}/mlruns.db", "ebft-model")
    champion = registry.alias(CHAMPION)
    assert str(champion.version) == "1"
    run_id = champion.tags["lineage.mlflow_run_id"]
    assert registry.client.get_run(run_id).data.tags["method"] == "rlvr"


def test_dvc_repro_then_finds_the_three_methods_up_to_date(project):
    root, env = project
    done = run([str(BIN / "dvc"), "repro"], root, env)
    assert "Running stage" not in done.stdout and "up to date" in done.stdout + done.stderr
