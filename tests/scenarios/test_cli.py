"""The `ebft` console script as a user types it (the installed entry point, in a subprocess): the commands and their
help, a mistyped command or key refused before anything is written, and a one-off `ebft train` over the user's own
Q&A pairs and model that trains, evaluates and leaves a self-describing run folder."""

import json
import os

import pytest
import yaml

from tests.helpers.project import BIN, run
from tests.scenarios.test_rlvr_stage import WORDS

EBFT = str(BIN / "ebft")


def env() -> dict[str, str]:
    clean = dict(os.environ)
    clean.pop("MLFLOW_TRACKING_URI", None)  # the run folder's own store, as for a user without a server
    return clean


def test_help_lists_the_commands_and_a_mistyped_one_is_named(tmp_path):
    out = run([EBFT, "--help"], tmp_path, env()).stdout
    for command in ("run", "train", "evaluate", "registry", "presets", "serve"):
        assert f"    {command} " in out, out
    bad = run([EBFT, "trian"], tmp_path, env(), check=False)
    assert bad.returncode == 2 and "invalid choice: 'trian'" in bad.stderr and "'train'" in bad.stderr
    assert "--data" in run([EBFT, "train", "--help"], tmp_path, env()).stdout
    assert "usage: ebft registry" in run([EBFT, "registry", "--help"], tmp_path, env()).stdout
    assert "translation-small" in run([EBFT, "presets", "list"], tmp_path, env()).stdout


def test_a_bad_key_or_missing_data_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"de": "eins", "en": "one"}\n')
    bad = run([EBFT, "train", "--data", "pairs.jsonl", "--set", "train.stepz=3", "--out", "run"], tmp_path, env(),
              check=False)  # fmt: skip
    assert bad.returncode == 1 and "train.stepz: unknown key" in bad.stderr and "steps" in bad.stderr
    missing = run([EBFT, "train", "--data", "nope.jsonl"], tmp_path, env(), check=False)
    assert missing.returncode == 1 and "--data" in missing.stderr and "no such file" in missing.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_one_off_train_over_your_pairs_trains_evaluates_and_records_its_params(tmp_path):
    rows = [{"de": f"{a} {b}", "en": f"{WORDS[a]} {WORDS[b]}"} for a in sorted(WORDS) for b in sorted(WORDS) if a != b]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run([EBFT, "train", "--data", "pairs.jsonl", "--model", "tiny:llama", "--preset", "tiny",
                "--set", "data.prompt_field=de", "--set", "data.completion_field=en", "--set", "data.seq_len=64",
                "--set", "train.methods=[ebft,rlvr]", "--set", "train.rlvr.max_new_tokens=8", "--set", "train.steps=1",
                "--set", "eval.code.tasks=[]", "--out", "my-run", "--evaluate"], tmp_path, env())  # fmt: skip
    folder = tmp_path / "my-run"
    assert f"models in {folder / 'models/trained/ebft'}, {folder / 'models/trained/rlvr'}" in done.stdout
    params = yaml.safe_load((folder / "params.yaml").read_text())
    assert params["data"]["source"] == "jsonl" and params["data"]["paths"] == ["inputs/data/pairs.jsonl"]
    assert params["model"]["base"] == "tiny:llama" and params["train"]["methods"] == ["ebft", "rlvr"]
    assert (folder / "inputs/data/pairs.jsonl").resolve() == (tmp_path / "pairs.jsonl").resolve()
    trained = json.loads((folder / "metrics/train.json").read_text())
    assert set(trained) == {"ebft", "rlvr"} and all(trained[m]["mlflow_run_id"] for m in trained)
    assert set(json.loads((folder / "metrics/eval.json").read_text())["models"]) == {"base", "ebft", "rlvr"}
    assert (folder / "mlruns.db").exists()
