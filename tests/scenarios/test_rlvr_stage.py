"""The RLVR baseline through the train stage on a tiny Q&A project (user JSONL pairs): EBFT, SFT and RLVR train side
by side on the same chunks, RLVR's rewards and losses are recorded, and a killed RLVR run resumes to the same
weights."""

import json
import os
import random

import pytest

from flows import features, prepare, train
from tests.helpers.project import write_params
from tests.scenarios.test_train_stage import assert_same_weights, kill_when, run_stage

pytestmark = pytest.mark.slow
PAIRS = "inputs/data/pairs.jsonl"
WORDS = {"eins": "one", "zwei": "two", "drei": "three", "vier": "four", "haus": "house", "baum": "tree",
         "hund": "dog", "katze": "cat", "rot": "red", "blau": "blue"}  # fmt: skip


def qa_overrides(pairs: str, **train) -> dict:
    return {
        "data": {"source": "jsonl", "paths": [pairs], "prompt_field": "de", "completion_field": "en",
                 "prompt_template": "de: {prompt} en:", "completion_template": " {completion}", "seq_len": 64,
                 "max_chunks": {"train": 8, "val": 4, "test": 0}},
        "train": {"rlvr": {"max_new_tokens": 8}, **train},
        "tracking": {"log_model": False},
    }  # fmt: skip


@pytest.fixture(scope="module")
def qa_project(tiny_project, tmp_path_factory):
    root = tmp_path_factory.mktemp("qa-project")
    (root / "models").mkdir()
    for name in ("models/base", "models/tokenizer"):
        (root / name).symlink_to((tiny_project / name).resolve())
    rng = random.Random(0)
    (root / "inputs/data").mkdir(parents=True)
    with open(root / PAIRS, "w") as f:
        for _ in range(120):
            picked = rng.sample(sorted(WORDS), 2)
            f.write(json.dumps({"de": " ".join(picked), "en": " ".join(WORDS[w] for w in picked)}) + "\n")
    params = write_params(root / "params.yaml", qa_overrides(PAIRS))
    here = os.getcwd()
    os.chdir(root)  # data.paths are the project's own inputs/data
    try:
        prepare.run(str(params), root / "models/tokenizer", root / "data", root / "metrics/data_card.json")
        cache = root / "features"
        features.run(str(params), root / "data", root / "models/base", cache, root / "metrics/features.json")
    finally:
        os.chdir(here)
    return root


def work_in(qa_project, folder, monkeypatch, **train):
    (folder / "models").mkdir(parents=True, exist_ok=True)
    for name in ("inputs", "data", "features", "models/base", "models/tokenizer"):
        (folder / name).symlink_to((qa_project / name).resolve())
    write_params(folder / "params.yaml", qa_overrides(PAIRS, **train))
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlruns.db")
    return folder


def test_ebft_sft_and_rlvr_train_on_the_same_chunks(qa_project, tmp_path, monkeypatch):
    work_in(qa_project, tmp_path, monkeypatch, methods=["ebft", "sft", "rlvr"], steps=3)
    record = train.run()
    assert set(record) == {"ebft", "sft", "rlvr"}
    for method in record:
        assert (tmp_path / "models/trained" / method / "model.safetensors").exists()
    rlvr = json.loads((tmp_path / "metrics/train.json").read_text())["rlvr"]
    assert rlvr["steps"] == 3 and 0.0 <= rlvr["final"]["reward"] <= 1.0
    # the same chunks first: equal CE before any update, for all three
    first = {m: record[m]["first"]["ce"] for m in record}
    assert first["rlvr"] == pytest.approx(first["sft"], abs=1e-5) == pytest.approx(first["ebft"], abs=1e-5)
    header = (tmp_path / "metrics/train_curves/rlvr.csv").read_text().splitlines()[0].split(",")
    assert {"reward", "reward_std", "pg_loss", "ce", "answer_tokens"} <= set(header)


def test_a_killed_rlvr_run_resumes_to_the_same_weights(qa_project, tmp_path_factory, monkeypatch):
    settings = {"methods": ["rlvr"], "steps": 4, "checkpoint_every": 2, "keep_checkpoints": 2}
    reference = work_in(qa_project, tmp_path_factory.mktemp("uninterrupted"), monkeypatch, **settings)
    train.run()  # in this process: the killed run below is a separate one
    killed = work_in(qa_project, tmp_path_factory.mktemp("killed"), monkeypatch, **settings)
    kill_when(run_stage(killed, wait=False), killed / "checkpoints/rlvr/step-000002/state.json")
    resumed = run_stage(killed)
    assert "resuming from checkpoints/rlvr/step-00000" in resumed.stdout + resumed.stderr
    assert_same_weights(killed / "models/trained/rlvr", reference / "models/trained/rlvr")
