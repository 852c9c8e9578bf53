"""The RLVR baseline through the train stage on a tiny Q&A project (user JSONL pairs): EBFT, SFT and RLVR train side
by side on the same chunks, RLVR's rewards and losses are recorded, and a killed RLVR run resumes to the same
weights; on the user's function-call tasks RLVR is rewarded by their unit tests, run in the sandbox."""

import csv
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


def code_tasks(count: int) -> list[dict]:
    """Function-call tasks in HumanEval's format. Half end their prompt inside a comment, so an answer without a
    newline leaves the function as written and passes; the other half need a body, which a random model never
    writes. The rewards the stage records then come from the tests, not from a constant."""
    rows = []
    for i in range(count):
        prompt = f"def f{i}(x):\n    return x + {i}\n# " if i % 2 else f'def f{i}(x):\n    """x + {i}"""\n'
        rows.append({"prompt": prompt, "solution": f"    return x + {i}\n", "entry": f"f{i}",
                     "test": f"def check(candidate):\n    assert candidate(1) == {1 + i}\n"})  # fmt: skip
    return rows


def test_rlvr_on_code_is_rewarded_by_the_unit_tests_in_the_sandbox(tiny_project, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    for name in ("models/base", "models/tokenizer"):
        (tmp_path / name).symlink_to((tiny_project / name).resolve())
    (tmp_path / "inputs/data").mkdir(parents=True)
    (tmp_path / "inputs/data/tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in code_tasks(80)))
    params = write_params(tmp_path / "params.yaml", {
        "data": {"source": "jsonl", "paths": ["inputs/data/tasks.jsonl"], "prompt_field": "prompt",
                 "completion_field": "solution", "tests_field": "test", "entry_point_field": "entry", "seq_len": 64,
                 "max_chunks": {"train": 8, "val": 2, "test": 0}},
        "train": {"methods": ["rlvr"], "steps": 3, "rlvr": {"reward": "unit_tests", "max_new_tokens": 8,
                                                            "prompts_per_chunk": 2}},
        "tracking": {"log_model": False},
    })  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    prepare.run(str(params), tmp_path / "models/tokenizer", tmp_path / "data", tmp_path / "metrics/data_card.json")
    train.run()
    with open(tmp_path / "metrics/train_curves/rlvr.csv") as f:
        rewards = [float(row["reward"]) for row in csv.DictReader(f)]
    assert len(rewards) == 3 and 0.0 < sum(rewards) / 3 < 1.0, rewards  # some answers pass their tests, some fail


def test_conversations_go_through_the_chat_template_into_ebft_and_rlvr(tiny_project, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from tests.data.test_chat import TEMPLATE

    chat_tokenizer = AutoTokenizer.from_pretrained(tiny_project / "models/tokenizer")
    chat_tokenizer.chat_template = TEMPLATE  # a chat model's tokenizer: the base model stays the tiny one
    chat_tokenizer.save_pretrained(tmp_path / "models/tokenizer")
    (tmp_path / "models/base").symlink_to((tiny_project / "models/base").resolve())
    (tmp_path / "inputs/data").mkdir(parents=True)
    rng = random.Random(1)
    with open(tmp_path / "inputs/data/chats.jsonl", "w") as f:
        for _ in range(120):
            picked = rng.sample(sorted(WORDS), 2)
            chat = [{"role": "system", "content": "Translate."}, {"role": "user", "content": " ".join(picked)},
                    {"role": "assistant", "content": " ".join(WORDS[w] for w in picked)}]  # fmt: skip
            f.write(json.dumps({"messages": chat}) + "\n")
    overrides = qa_overrides("inputs/data/chats.jsonl", methods=["ebft", "rlvr"], steps=1, qa_masking=True)
    # the template's markers take many tokens of the tiny tokenizer: chunks long enough to hold whole conversations
    overrides["data"] |= {"prompt_field": None, "completion_field": None, "messages_field": "messages", "seq_len": 128}
    params = write_params(tmp_path / "params.yaml", overrides)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    card = prepare.run(str(params))
    assert 0.1 < card["splits"]["train"]["answer_token_fraction"] < 0.5  # the assistant turns only
    first = json.loads((tmp_path / "data/train.jsonl").read_text().splitlines()[0])
    assert first["messages"][2]["trained"] and not first["messages"][1]["trained"]
    features.run(str(params))
    record = train.run(str(params))
    assert set(record) == {"ebft", "rlvr"}
    (row,) = csv.DictReader((tmp_path / "metrics/train_curves/rlvr.csv").open())
    assert float(row["answer_tokens"]) > 0  # RLVR found the conversations' prompts and sampled answers to them
