"""Registry and promotion against a real `mlflow server` over HTTP: the first model becomes champion, an unchanged
model is not registered twice, a real improvement is promoted and a non-improvement is not, lineage and decisions are
version tags, rollback, `models:/<name>@champion` loads and generates, and an interrupted registration moves no alias
and leaves no half-registered version."""

import contextlib
import json
import os

import mlflow
import numpy as np
import pytest
import yaml

from components.data.model_loading import load_tokenizer
from components.data.tiny_models import tiny_causal_lm
from components.release.config import GateConfig
from components.release.promotion.register import NotComparable, register_and_gate
from components.release.registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryError, project_id
from components.release.tracking import RunTracker, tracking_uri_scope
from tests.helpers.gate_files import N, write_eval
from tests.helpers.servers import mlflow_server

pytestmark = pytest.mark.slow
GATE = GateConfig(primary="fm_alignment", guards={"val_ce": 0.05})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("registry-server")) as url:
        yield url


class FakeProject:
    """The files register_and_gate reads from a project after `dvc repro`: dvc.lock, params.yaml, train.json, the
    trained model and its per-example evaluation; each `train()` logs a new tiny model to the server."""

    def __init__(self, root, uri, tokenizer_dir):
        self.root, self.uri, self.tokenizer = root, uri, load_tokenizer(tokenizer_dir)
        root.mkdir(parents=True, exist_ok=True)
        (root / "params.yaml").write_text("seed: 1\n")
        self.set_eval_setting("v1")

    def set_eval_setting(self, tag: str) -> None:
        entry = lambda path, md5: {"path": path, "md5": md5}  # noqa: E731
        lock = {"stages": {
            "base_model": {"deps": [entry("inputs/models", "m" * 32 + ".dir")]},
            "prepare": {"deps": [entry("inputs/data", "i" * 32 + ".dir")], "outs": [entry("data", "d" * 32 + ".dir")]},
            "features": {"outs": [entry("features", "f" * 32 + ".dir")]},
            "evaluate": {"deps": [entry("data", "d" * 32 + ".dir"), entry("features", "f" * 32 + ".dir")],
                         "params": {"params.yaml": {"eval": {"setting": tag}}}},
        }}  # fmt: skip
        (self.root / "dvc.lock").write_text(yaml.safe_dump(lock))

    def train(self, seed: int, alignment, ce) -> None:
        model = tiny_causal_lm(vocab_size=len(self.tokenizer), seed=seed)
        folder = self.root / "models/trained/ebft"
        model.save_pretrained(folder)
        tracker = RunTracker(self.uri, "registry-test")
        run_id = tracker.start(f"ebft-{seed}", {"method": "ebft"})
        uri = tracker.log_model(model, self.tokenizer, folder, card=f"# tiny {seed}")
        tracker.finish()
        (self.root / "metrics").mkdir(exist_ok=True)
        (self.root / "metrics/train.json").write_text(json.dumps({"ebft": {"mlflow_run_id": run_id, "model_uri": uri}}))
        write_eval(self.root / "eval/ebft", alignment, ce)

    def gate(self, registry):
        return register_and_gate(registry, self.root, "ebft", GATE, seed=1, flow_run_id="flow-run-123")


@pytest.fixture(scope="module")
def project(tmp_path_factory, server, tiny_project):
    return FakeProject(tmp_path_factory.mktemp("registry-project"), server, tiny_project / "models/tokenizer")


RNG = np.random.default_rng(0)
BASE_ALIGNMENT = 0.5 + 0.1 * RNG.standard_normal(N)
BASE_CE = 2.0 + 0.2 * RNG.standard_normal(N)


def test_promotion_lifecycle_on_a_real_server(project, server):
    registry = ModelRegistry(server, "lifecycle")

    project.train(1, BASE_ALIGNMENT, BASE_CE)
    first = project.gate(registry)
    assert first.newly_registered and first.decision == "promote" and "first model" in first.reason
    assert registry.alias(CHAMPION).version == registry.alias(CHALLENGER).version == first.version == "1"
    tags = registry.alias(CHAMPION).tags
    for key in ("lineage.git_commit", "lineage.dvc_lock_sha256", "lineage.data_md5", "lineage.params_sha256",
                "lineage.seed", "lineage.prefect_flow_run_id", "lineage.mlflow_run_id", "model.sha256"):  # fmt: skip
        assert tags[key], key
    assert tags["lineage.prefect_flow_run_id"] == "flow-run-123" and tags["ebft.state"] == "final"

    again = project.gate(registry)  # nothing changed: no new version, champion stays
    assert not again.newly_registered and again.version == "1" and len(registry.versions()) == 1

    project.train(2, BASE_ALIGNMENT + 0.03, BASE_CE - 0.01)  # a real improvement
    second = project.gate(registry)
    assert second.decision == "promote" and registry.alias(CHAMPION).version == "2"
    v2 = registry.alias(CHAMPION).tags
    assert v2["ebft.previous_champion"] == "1" and v2["gate.compared_with"] == "1" and float(v2["gate.primary.low"]) > 0

    project.train(3, BASE_ALIGNMENT + 0.03 + 0.05 * RNG.standard_normal(N), BASE_CE)  # noise around v2
    third = project.gate(registry)
    assert third.decision == "keep" and "not significant" in third.reason
    assert registry.alias(CHAMPION).version == "2" and registry.alias(CHALLENGER).version == "3"
    assert registry.client.get_model_version("lifecycle", "3").tags["gate.decision"] == "keep"

    project.train(4, BASE_ALIGNMENT + 0.1, BASE_CE + 0.5)  # better features, much worse language model
    fourth = project.gate(registry)
    assert fourth.decision == "keep" and "guard regressed: val_ce" in fourth.reason
    assert registry.alias(CHAMPION).version == "2"

    project.set_eval_setting("v2")  # evaluated on something else: scores are not comparable example by example
    project.train(5, BASE_ALIGNMENT + 0.2, BASE_CE - 0.2)
    fifth = project.gate(registry)
    assert fifth.decision == "keep" and "not comparable" in fifth.reason
    project.set_eval_setting("v1")

    with tracking_uri_scope(server):  # what consumers do
        generator = mlflow.transformers.load_model("models:/lifecycle@champion")
        assert len(generator("def f(x):", max_new_tokens=4, do_sample=False)[0]["generated_text"]) > 0

    assert registry.rollback() == ("2", "1") and registry.alias(CHAMPION).version == "1"
    with pytest.raises(RegistryError, match="was the first"):
        registry.rollback()
    registry.promote("3", "checked by hand")
    assert registry.alias(CHAMPION).version == "3"
    assert registry.client.get_model_version("lifecycle", "3").tags["gate.manual"] == "checked by hand"


def test_a_champion_gated_on_other_data_is_scored_again_on_this_runs_data(project, server):
    """New data changes the held-out set: the champion is evaluated again on it (here: its scores are given), so the
    gate still compares the two models on the same examples; a champion that cannot be is 'not comparable'."""
    registry = ModelRegistry(server, "reevaluated")
    project.set_eval_setting("old data")
    project.train(31, BASE_ALIGNMENT, BASE_CE)
    project.gate(registry)
    project.set_eval_setting("new data")
    project.train(32, BASE_ALIGNMENT + 0.03, BASE_CE - 0.01)
    seen = []

    def reevaluate(version, scratch):
        model_dir = registry.download_model(version, scratch / "model")  # a plain HF folder the stage can load
        seen.append((version.version, sorted(p.name for p in model_dir.iterdir())))
        return write_eval(scratch / "champion", BASE_ALIGNMENT, BASE_CE)

    result = register_and_gate(registry, project.root, "ebft", GATE, seed=1, reevaluate=reevaluate)
    assert seen[0][0] == "1" and {"config.json", "model.safetensors", "tokenizer.json"} <= set(seen[0][1])
    assert result.decision == "promote" and "champion v1 re-evaluated on this run's held-out data" in result.reason
    assert registry.alias(CHAMPION).version == "2"

    def another_tokenizer(version, scratch):
        raise NotComparable("uses another tokenizer")

    project.set_eval_setting("newer data")
    project.train(33, BASE_ALIGNMENT + 0.1, BASE_CE - 0.1)
    result = register_and_gate(registry, project.root, "ebft", GATE, seed=1, reevaluate=another_tokenizer)
    assert result.decision == "keep" and result.reason == "not comparable: champion v2 uses another tokenizer"
    assert registry.alias(CHAMPION).version == "2"
    project.set_eval_setting("v1")


def test_an_interrupted_registration_moves_no_alias_and_leaves_no_version(project, server, monkeypatch):
    registry = ModelRegistry(server, "interrupted")
    project.train(11, BASE_ALIGNMENT, BASE_CE)
    project.gate(registry)
    project.train(12, BASE_ALIGNMENT + 0.05, BASE_CE - 0.05)

    calls = []
    real_tag = registry.client.set_model_version_tag

    def dies_midway(*args):  # the connection drops after some decision tags were written
        calls.append(args)
        if len(calls) == 3:
            raise ConnectionError("tracking server went away")
        return real_tag(*args)

    monkeypatch.setattr(registry.client, "set_model_version_tag", dies_midway)
    with pytest.raises(ConnectionError):
        project.gate(registry)
    monkeypatch.undo()
    assert [v.version for v in registry.versions()] == ["1"]
    assert registry.alias(CHAMPION).version == registry.alias(CHALLENGER).version == "1"

    # a run killed outright (no exception handler ran) leaves a pending version: the next run removes it
    trained = json.loads((project.root / "metrics/train.json").read_text())["ebft"]
    registry.register(trained["model_uri"], trained["mlflow_run_id"], {"x": "y"}, project_id(project.root))
    assert [v.tags["ebft.state"] for v in registry.versions()] == ["final", "pending"]
    result = project.gate(registry)
    assert any("deleted" in line for line in result.cleaned)
    assert result.decision == "promote" and registry.alias(CHAMPION).version == result.version
    assert all(v.tags["ebft.state"] == "final" for v in registry.versions())


def test_two_projects_on_one_registry_clean_up_only_their_own_dead_versions(project, server, tmp_path, tiny_project):
    registry = ModelRegistry(server, "shared")
    project.train(31, BASE_ALIGNMENT, BASE_CE)
    project.gate(registry)
    other = FakeProject(tmp_path / "other", server, tiny_project / "models/tokenizer")
    other.train(32, BASE_ALIGNMENT + 0.05, BASE_CE - 0.05)
    # the other project's run is in flight: its version is registered, its gate not yet decided
    trained = json.loads((other.root / "metrics/train.json").read_text())["ebft"]
    in_flight = registry.register(trained["model_uri"], trained["mlflow_run_id"], {}, project_id(other.root))

    project.train(33, BASE_ALIGNMENT + 0.1, BASE_CE - 0.1)
    result = project.gate(registry)
    assert result.cleaned == [f"v{in_flight.version}: left pending (created 0.0 h ago by {project_id(other.root)}, "
                              "not this project)"]  # fmt: skip
    assert registry.client.get_model_version("shared", in_flight.version).tags["ebft.state"] == "pending"

    # the other project's run dies; its next run (holding its own lock) cleans its version up and gates again
    result = other.gate(registry)
    assert result.cleaned == [f"v{in_flight.version}: deleted (registration was interrupted before its gate decision)"]
    assert all(v.tags["ebft.state"] == "final" for v in registry.versions())


def test_the_registry_command_names_a_missing_version(project, server, monkeypatch):
    from flows.registry import main

    registry = ModelRegistry(server, "by-hand")
    project.train(35, BASE_ALIGNMENT, BASE_CE)
    project.gate(registry)
    with pytest.raises(SystemExit) as exit_:
        main(["promote", "--version", "999", "--uri", server, "--name", "by-hand"])
    assert str(exit_.value) == "error: 'by-hand' has no version '999' (its versions: v1)"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once rather than after MLflow's backoff
    with pytest.raises(SystemExit) as exit_:
        main(["promote", "--version", "1", "--uri", "http://127.0.0.1:9", "--name", "by-hand"])
    assert str(exit_.value).startswith("error: cannot reach the registry at http://127.0.0.1:9")


def test_a_local_sqlite_registry_as_make_run_uses_it(tmp_path, tiny_project):
    """The embedded default: registry and runs in a project's own SQLite file, while MLflow's global tracking URI
    points elsewhere (MLflow resolves a logged model's source through the global URI)."""
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    before = os.environ["MLFLOW_TRACKING_URI"]
    assert before != uri
    project = FakeProject(tmp_path / "project", uri, tiny_project / "models/tokenizer")
    project.train(21, BASE_ALIGNMENT, BASE_CE)
    registry = ModelRegistry(uri, "local")
    result = project.gate(registry)
    assert result.decision == "promote" and result.version == "1" and str(registry.alias(CHAMPION).version) == "1"
    assert os.environ["MLFLOW_TRACKING_URI"] == before and mlflow.get_tracking_uri() == before
    assert set(registry.versions()[0].aliases) == {"challenger", "champion"}

    # a run killed after its first alias move: the version is complete, so it is kept and marked final
    trained = json.loads((project.root / "metrics/train.json").read_text())["ebft"]
    pending = registry.register(trained["model_uri"], trained["mlflow_run_id"], {}, project_id(project.root))
    registry.client.set_registered_model_alias("local", CHALLENGER, str(pending.version))
    assert registry.discard_incomplete(project_id(project.root)) == ["v2: finished an interrupted commit"]
    assert [v.tags["ebft.state"] for v in registry.versions()] == ["final", "final"]


class Killed(BaseException):
    """What SIGKILL does to a run: it stops at once, and no exception handler of its own runs."""


MODEL_FILES = ("metrics/train.json", "models/trained/ebft/model.safetensors", "eval/ebft/validation_ce.jsonl",
               "eval/ebft/feature_matching.jsonl")  # fmt: skip


def registry_state(registry: ModelRegistry) -> dict:
    """What consumers and the next run see, by model (weights hash) rather than by version number."""
    champion, challenger = registry.alias(CHAMPION), registry.alias(CHALLENGER)
    previous = registry.client.get_model_version(registry.name, champion.tags["ebft.previous_champion"])
    versions = registry.versions()
    return {
        "champion": champion.tags["model.sha256"],
        "challenger": challenger.tags["model.sha256"],
        "champion_decision": champion.tags["gate.decision"],
        "previous_champion": previous.tags["model.sha256"],
        "states": sorted({v.tags["ebft.state"] for v in versions}),
        "copies_of_champion": [v.tags["model.sha256"] for v in versions].count(champion.tags["model.sha256"]),
    }


def test_a_run_killed_at_any_write_of_its_commit_converges_to_the_uninterrupted_state(tmp_path, tiny_project):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    project = FakeProject(tmp_path / "project", uri, tiny_project / "models/tokenizer")
    models = {}
    for name, seed, shift in (("first", 41, 0.0), ("better", 42, 0.05)):
        project.train(seed, BASE_ALIGNMENT + shift, BASE_CE - shift)
        models[name] = {path: (project.root / path).read_bytes() for path in MODEL_FILES}

    def use(model: str) -> None:
        for path, data in models[model].items():
            (project.root / path).write_bytes(data)

    def gated_then_improved(name: str, kill_at: int | None = None) -> int:
        """v1 from the first model, then a run that registers the better one and is killed at write ``kill_at``;
        returns how many registry writes that run made (or tried)."""
        registry = ModelRegistry(uri, name)
        use("first")
        project.gate(registry)
        use("better")
        writes = 0
        for method in ("set_model_version_tag", "set_registered_model_alias"):
            real = getattr(registry.client, method)

            def counted(*args, real=real):
                nonlocal writes
                writes += 1
                if writes == kill_at:
                    raise Killed
                return real(*args)

            setattr(registry.client, method, counted)
        registry.discard = lambda version: False  # a killed process cleans up nothing
        with contextlib.suppress(Killed):
            project.gate(registry)
        return writes

    total = gated_then_improved("uninterrupted")
    expected = registry_state(ModelRegistry(uri, "uninterrupted"))
    assert expected["champion"] == expected["challenger"] != expected["previous_champion"]
    assert expected["champion_decision"] == "promote" and expected["states"] == ["final"]
    # the commit's writes: the decision tags, ebft.decided, previous champion, promoted_at, champion, challenger, final
    decided = total - 5
    for kill_at in sorted({1, decided // 2, decided, decided + 1, decided + 2, decided + 3, decided + 4, total}):
        gated_then_improved(f"killed-{kill_at}", kill_at)
        registry = ModelRegistry(uri, f"killed-{kill_at}")
        result = project.gate(registry)  # the next run: recovery first, then registration as needed
        assert registry_state(registry) == expected, (kill_at, result.cleaned)
        assert result.cleaned == [
            "v2: deleted (registration was interrupted before its gate decision)"
            if kill_at <= decided
            else "v2: finished an interrupted commit"
        ], kill_at
