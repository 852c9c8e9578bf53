"""The product end to end, with the real parts, on one project built once (tiny preset, a temporary git repository)
whose data is the user's own: Q&A pairs in a jsonl file that lives outside the project, brought into inputs/data with
`dvc import-url`. The pipeline flow (Prefect, what `make run` runs) runs the stages through DVC, trains EBFT, SFT and
RLVR side by side, evaluates all of them and the base model (held-out chunks, HumanEval, translation of the held-out
pairs), records to a real `mlflow server` over HTTP (per-example tables included), registers and gates the model;
editing code a stage imports makes DVC rerun it; plain `dvc repro` agrees, and
reruns exactly what a change touches (eval params: evaluate; tracking/registry params: nothing; data params: prepare,
not base_model); a bad override is refused before anything runs; a second pipeline is refused while one holds the
project; and a real `prefect server` schedules the cron deployment from infra/prefect.yaml, whose runs a process
worker executes: new data upstream -> prepare ... evaluate -> a new version gated against the re-evaluated champion;
nothing new -> every stage skipped, no version, champion untouched; an override in the run's parameters -> trained
with it (and registry.method picks RLVR); a malformed row upstream -> the run fails in prepare, and the row's
file:line is in the Prefect run's log and failure message. Tests run in file order and build on each other."""

import itertools
import json
import random
import subprocess
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from components.params.loading import deep_merge
from components.params.presets import apply_preset
from components.release.registry import CHALLENGER, CHAMPION, ModelRegistry
from components.release.run_lock import project_lock
from tests.helpers.project import BIN, ROOT, new_dvc_project, run
from tests.helpers.servers import mlflow_server, prefect_server, run_table
from tests.scenarios.test_rlvr_stage import WORDS

pytestmark = pytest.mark.slow
NAME = "tiny-ebft"
DATA = "inputs/data/pairs.jsonl"
PHRASES = list(itertools.permutations(sorted(WORDS), 3))
random.Random(0).shuffle(PHRASES)


def pairs(start: int, count: int) -> list[str]:
    """The user's Q&A documents: German phrases and their English translations, each one distinct."""
    return [json.dumps({"de": " ".join(p), "en": " ".join(WORDS[w] for w in p)}) + "\n"
            for p in PHRASES[start : start + count]]  # fmt: skip


def api_post(api: str, path: str, body: dict) -> list[dict]:
    request = urllib.request.Request(
        f"{api}/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("pipeline-mlflow")) as url:
        yield url


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    """Where the user's data lives and new data arrives (another disk, a share; s3:// works the same way)."""
    feed = tmp_path_factory.mktemp("upstream") / "pairs.jsonl"
    feed.write_text("".join(pairs(0, 150)))
    return feed


@pytest.fixture(scope="module")
def project(tmp_path_factory, server, upstream):
    root = tmp_path_factory.mktemp("pipeline-project")
    params = deep_merge(apply_preset(yaml.safe_load((ROOT / "params.yaml").read_text()), "tiny"), {
        "data": {"source": "jsonl", "paths": [DATA], "prompt_field": "de", "completion_field": "en",
                 "prompt_template": "de: {prompt} en:", "completion_template": " {completion}", "seq_len": 64,
                 "val_fraction": 0.15, "test_fraction": 0.15, "max_chunks": {"train": 8, "val": 4, "test": 4}},
        "train": {"methods": ["ebft", "sft", "rlvr"], "rlvr": {"max_new_tokens": 8}},
        "eval": {"translation": {"enabled": True, "max_pairs": 8, "decoding": {"max_new_tokens": 8}}},
        "tracking": {"uri": server},
        "registry": {"name": NAME},
    })  # fmt: skip
    return root, new_dvc_project(root, params, ["import-url", "-q", str(upstream), DATA])


def pipeline(project, *args, check=True) -> subprocess.CompletedProcess:
    root, env = project
    return run([str(BIN / "python"), "-m", "flows.pipeline", "--project", str(root), *args], root, env, check=check)


def report(project) -> str:
    return (project[0] / "reports/latest.md").read_text()


def set_param(project, dotted, value):
    path = project[0] / "params.yaml"
    params = yaml.safe_load(path.read_text())
    *parents, leaf = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_the_first_run_builds_everything_and_the_first_model_becomes_champion(project, server):
    out = pipeline(project).stdout
    assert "EBFT pipeline finished" in out and f"champion: {NAME} v1" in out
    text = report(project)
    for stage in ("base_model", "prepare", "features", "train", "evaluate"):
        assert f"| {stage} | ran |" in text
    assert "decision **promote**" in text and "first model" in text
    assert f"{server}/#/models/{NAME}/versions/1" in text
    registry = ModelRegistry(server, NAME)
    assert registry.alias(CHAMPION).version == registry.alias(CHALLENGER).version == "1"
    tags = registry.alias(CHAMPION).tags
    assert tags["lineage.prefect_flow_run_id"] != "none (run outside Prefect)"
    lock = yaml.safe_load((project[0] / "dvc.lock").read_text())
    assert tags["lineage.data_md5"] == next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data")
    deps = lock["stages"]["prepare"]["deps"]
    assert tags["lineage.inputs_data_md5"] == next(d["md5"] for d in deps if d["path"] == "inputs/data")
    assert json.loads((project[0] / "metrics/data_card.json").read_text())["records"]["read"] == 150
    assert set(json.loads((project[0] / "metrics/train.json").read_text())) == {"ebft", "sft", "rlvr"}
    assert set(json.loads((project[0] / "metrics/eval.json").read_text())["models"]) == {"base", "ebft", "sft", "rlvr"}
    run_id = tags["lineage.mlflow_run_id"]  # the champion's run: every translation and code sample it was scored on
    translations = run_table(server, run_id, "evaluation/translation_examples.json")
    code = run_table(server, run_id, "evaluation/code_examples.json")
    assert len(translations) == 8 and {"source", "reference", "hypothesis", "chrf"} <= set(translations.columns)
    assert len(code) == 3 and {"completion", "status", "error_kind"} <= set(code.columns)


def dvc(project, *args: str) -> str:
    root, env = project
    done = run([str(BIN / "dvc"), *args], root, env)
    return done.stdout + done.stderr


def stages_run(output: str) -> set[str]:
    return {s for s in ("base_model", "prepare", "features", "train", "evaluate") if f"Running stage '{s}'" in output}


def test_editing_code_a_stage_imports_makes_dvc_rerun_it(project):
    """The stage deps come from the import graph: the engine's masks and log-probs are training code."""
    root = project[0]
    for module in ("components/engine/masks.py", "components/engine/token_logprobs.py"):
        original = (root / module).read_text()
        (root / module).write_text(original + "# edited\n")
        status = dvc(project, "status")
        assert {"train:", "features:", "evaluate:"} <= set(status.split()), status
        (root / module).write_text(original)
    assert "up to date" in dvc(project, "status")


def test_dvc_alone_agrees_and_an_eval_or_tracking_change_reruns_only_what_it_should(project):
    """`dvc repro` by hand sees what the pipeline built; the stage outputs and metrics are where the README says."""
    root = project[0]
    for path in ("models/base/config.json", "models/tokenizer/tokenizer.json", "data/train.safetensors",
                 "data/val.jsonl", "features/index.json", "models/trained/ebft/model.safetensors",
                 "models/trained/sft/model.safetensors", "models/trained/rlvr/model.safetensors",
                 "metrics/train_curves/ebft.csv", "eval/ebft/code.jsonl", "eval/rlvr/translation.jsonl",
                 "metrics/comparison.md", "metrics/plots/alignment_distribution.png"):  # fmt: skip
        assert (root / path).exists(), path
    card = json.loads((root / "metrics/data_card.json").read_text())
    assert card["splits"]["train"]["chunks"] == 8 and card["splits"]["val"]["chunks"] == 4
    assert card["splits"]["train"]["documents_in_chunks"] >= 8  # spread over the stream: a file per chunk or more
    assert card["source_fingerprint"][DATA] and card["tokenizer_sha256"]
    metrics = dvc(project, "metrics", "show")
    assert "data_card.json" in metrics and "train.json" in metrics and "eval.json" in metrics
    output = dvc(project, "repro")
    assert stages_run(output) == set() and "up to date" in output

    set_param(project, "eval.feature_samples", 2)
    assert stages_run(dvc(project, "repro")) == {"evaluate"}
    set_param(project, "tracking.experiment", "renamed")  # where runs are recorded is not a reason to retrain
    set_param(project, "registry.gate.confidence", 0.9)  # nor are the gate's settings
    assert stages_run(dvc(project, "repro")) == set()
    set_param(project, "tracking.experiment", "ebft")


def test_a_second_pipeline_is_refused_while_one_holds_the_project(project, server):
    with project_lock(project[0] / ".ebft/pipeline.lock", holder="a test holding the project"):
        done = pipeline(project, "--lock-wait", "1", check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "another pipeline run holds" in output and "a test holding the project" in output
    assert "Running stage" not in output and "repro-" not in output


def test_a_bad_override_is_refused_before_anything_runs(project):
    before = (project[0] / "params.yaml").read_text()
    done = pipeline(project, "--set", "train.stepz=3", check=False)
    assert done.returncode != 0 and "train.stepz: unknown key" in done.stderr and "steps" in done.stderr
    assert "Running stage" not in done.stdout and (project[0] / "params.yaml").read_text() == before


def test_the_cron_deployment_is_scheduled_and_run_by_a_worker(project, server, upstream, tmp_path):
    root, env = project
    with prefect_server(tmp_path, env) as api:
        penv = env | {"PREFECT_API_URL": api, "EBFT_PROJECT_DIR": str(root)}
        prefect = str(BIN / "prefect")
        run([prefect, "work-pool", "create", "ebft-local", "--type", "process"], root, penv)
        run([prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "infra/prefect.yaml"], root, penv)

        deadline = time.time() + 90
        while True:  # the scheduler service creates the upcoming cron runs of a new deployment within seconds
            [deployment] = api_post(api, "deployments/filter", {"deployments": {"name": {"any_": ["ebft-retrain"]}}})
            runs = api_post(api, "flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}})
            scheduled = [r for r in runs if r["state_type"] == "SCHEDULED"]
            if len(scheduled) >= 3 or time.time() > deadline:
                break
            time.sleep(2)
        assert deployment["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
        starts = sorted(datetime.fromisoformat(r["expected_start_time"]) for r in scheduled)
        assert len(starts) >= 3 and all(t.hour == 3 and t.minute == 0 for t in starts), starts

        finished: list[dict] = []

        def scheduled_run(parameters: dict | None = None, expect: str = "COMPLETED") -> str:
            """A run of the deployment (as its cron would start it), executed by a process worker; its report."""
            extra = ["--params", json.dumps(parameters)] if parameters else []
            run([prefect, "deployment", "run", "ebft-pipeline/ebft-retrain", *extra], root, penv)
            worker = run([prefect, "worker", "start", "--pool", "ebft-local", "--run-once"], root, penv, timeout=900)
            runs = api_post(api, "flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}},
                                                      "sort": "START_TIME_ASC"})  # fmt: skip
            finished[:] = [r for r in runs if r["state_type"] not in ("SCHEDULED", "PENDING")]
            states = [r["state_type"] for r in finished]
            assert states[-1] == expect and set(states[:-1]) <= {"COMPLETED"}, worker.stdout[-4000:] + worker.stderr
            return report(project)

        registry = ModelRegistry(server, NAME)
        versions = len(registry.versions())
        # New data arrives where the user's data lives; the scheduled run brings it in and retrains.
        with open(upstream, "a") as feed:
            feed.writelines(pairs(150, 50))
        text = scheduled_run()
        assert "inputs: updated from their source: inputs/data/pairs.jsonl.dvc" in text
        assert "| base_model | skipped (unchanged) |" in text
        for stage in ("prepare", "features", "train", "evaluate"):
            assert f"| {stage} | ran |" in text, text
        assert json.loads((root / "metrics/data_card.json").read_text())["records"]["read"] == 200
        new = registry.client.get_model_version(NAME, str(versions + 1))
        assert new.tags["gate.compared_with"] == "1" and new.tags["gate.decision"] in ("promote", "keep")
        assert "champion v1 re-evaluated on this run's held-out data" in new.tags["gate.reason"]
        assert "gate.primary.delta" in new.tags and registry.alias(CHALLENGER).version == str(versions + 1)
        champion = registry.alias(CHAMPION).version
        artifacts = api_post(api, "artifacts/filter", {"artifacts": {"key": {"any_": ["ebft-pipeline-report"]}}})
        assert artifacts and "## Registry and promotion gate" in artifacts[0]["data"]
        keys = ["ebft-comparison", "ebft-training-run", "ebft-registered-model"]
        shown = {a["key"]: a for a in api_post(api, "artifacts/filter", {"artifacts": {"key": {"any_": keys}}})}
        assert set(shown) == set(keys) and shown["ebft-comparison"]["type"] == "table"
        assert "val_ce" in json.dumps(shown["ebft-comparison"]["data"]) and "rlvr" in json.dumps(
            shown["ebft-comparison"]["data"]
        )
        assert f"{server}/#/models/{NAME}/versions/{versions + 1}" in json.dumps(shown["ebft-registered-model"]["data"])
        # The train stage's bar, as a progress artifact and in the run's log (the UI shows no stdout).
        bars = api_post(api, "artifacts/filter", {"artifacts": {"key": {"any_": ["progress-train-train-ebft"]}},
                                                  "sort": "CREATED_DESC"})  # fmt: skip
        assert bars and bars[0]["type"] == "progress" and bars[0]["data"] == 100
        assert "stage train: train ebft: 100% (2/2)" in bars[0]["description"]
        logs = api_post(api, "logs/filter", {"logs": {"flow_run_id": {"any_": [finished[-1]["id"]]}}, "limit": 200})
        assert any("stage train: train ebft: 100% (2/2)" in entry["message"] for entry in logs)

        # Nothing new: every stage skipped, no version, the champion untouched.
        text = scheduled_run()
        assert text.count("skipped (unchanged)") == 5 and "inputs: nothing new" in text
        assert len(registry.versions()) == versions + 1 and registry.alias(CHAMPION).version == champion

        # An override in the run's parameters reaches the stages (MLflow records what training used) and is gated.
        text = scheduled_run({"overrides": {"train.steps": 3, "registry.method": "rlvr"}})
        assert "params.yaml override train.steps: 2 -> 3" in text
        assert "| train | ran |" in text and "| evaluate | ran |" in text
        assert "| prepare | skipped (unchanged) |" in text
        third = registry.client.get_model_version(NAME, str(versions + 2))
        assert third.tags["gate.compared_with"] == champion and "gate.primary.delta" in third.tags
        run_id = third.tags["lineage.mlflow_run_id"]
        assert registry.client.get_run(run_id).data.params["train.steps"] == "3"
        assert registry.client.get_run(run_id).data.tags["method"] == "rlvr"  # registry.method picked the baseline
        assert [m.step for m in registry.client.get_metric_history(run_id, "loss")] == [1, 2, 3]
        assert yaml.safe_load((root / "params.yaml").read_text())["train"]["steps"] == 3
        assert len(finished) == 3

        # A malformed row arrives upstream: the run fails in prepare, and says where and why in Prefect itself
        # (the UI shows the run's log, not the worker's stdout); nothing is registered, the champion stays.
        champion = registry.alias(CHAMPION).version
        with open(upstream, "a") as feed:
            feed.write('{"de": "fünf", "en": "five"\n')  # line 201: the closing brace is missing
        scheduled_run(expect="FAILED")
        why = "pairs.jsonl:201: not valid JSON"
        failed = finished[-1]
        assert why in failed["state"]["message"] and "stage 'prepare' failed" in failed["state"]["message"], failed
        logs = api_post(api, "logs/filter", {"logs": {"flow_run_id": {"any_": [failed["id"]]}}, "limit": 200})
        assert any(why in entry["message"] for entry in logs), [entry["message"][-300:] for entry in logs]
        assert len(registry.versions()) == versions + 2 and registry.alias(CHAMPION).version == champion


def test_a_data_param_change_reruns_prepare_and_not_the_base_model(project):
    """What follows prepare reruns when its output changes: the scheduled run on new data above showed exactly that
    (prepare, features, train, evaluate ran; base_model skipped), so DVC's status is enough here."""
    set_param(project, "data.val_fraction", 0.3)
    status = dvc(project, "status")
    assert "prepare:" in status.split() and "base_model:" not in status.split() and "params.yaml:" in status
