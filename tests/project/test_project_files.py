"""What a new user copies from the README and params.yaml must work."""

import re

from components.params.loading import load_params
from tests.helpers.project import ROOT


def test_readme_python_examples_run(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 2, "README's python examples: the trainer API and the engine"
    monkeypatch.chdir(tmp_path)
    api: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), api)
    assert api["result"].steps == 2 and (tmp_path / "runs/api-example/model.safetensors").exists()
    assert api["result"].history[-1]["valid_block_frac"] > 0  # the answers hold whole blocks: EBFT rewards them
    engine: dict = {}
    exec(compile(blocks[1], "README.md", "exec"), engine)
    assert {"loss", "reward", "ce"} <= set(engine["out"].metrics)


def test_params_file_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.ebft_config().layout.num_blocks == 16


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_readme_make_targets_exist():
    readme, makefile = (ROOT / "README.md").read_text(), (ROOT / "Makefile").read_text()
    assert readme.index("make run") < readme.index("make test") < readme.index("## The pipeline")
    for target in sorted(set(re.findall(r"`make ([a-z-]+)`", readme))):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"README mentions `make {target}`"


def test_readme_yaml_snippets_validate():
    import yaml

    from components.params.loading import validate_params

    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S):
        raw = yaml.safe_load(block)
        if "model" in raw and raw["model"]["base"].startswith("/path"):
            raw["model"]["base"] = "tiny:llama"
        if raw.get("data", {}).get("source") == "jsonl":
            raw["data"]["paths"] = ["x.jsonl"]
        validate_params(raw)


def test_the_deployment_points_at_the_pipeline_flow():
    import inspect

    import yaml

    from flows.pipeline import pipeline

    spec = yaml.safe_load((ROOT / "infra/prefect.yaml").read_text())
    [deployment] = spec["deployments"]
    path, name = deployment["entrypoint"].split(":")
    assert (ROOT / path).exists() and name == "pipeline"
    assert set(deployment["parameters"]) <= set(inspect.signature(pipeline.fn).parameters)
    assert deployment["schedules"][0]["cron"] and deployment["work_pool"]["name"] == "ebft-local"


def test_the_compose_file_wires_the_services():
    import yaml

    compose = yaml.safe_load((ROOT / "infra/docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "worker"} <= set(services)
    assert "postgresql://" in services["mlflow"]["command"] and "s3://" in services["mlflow"]["command"]
    assert (ROOT / services["worker"]["build"]["dockerfile"]).exists()
    assert services["worker"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_the_lock_pins_no_local_version_label():
    """`torch==2.13.0+cpu` would make the lock reinstall the CPU build over a CUDA one on a GPU machine (and fail on a
    CUDA index); without the label the same lock takes the CPU wheel here and keeps or installs a CUDA build there."""
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), flags=re.M)
    assert ("torch", "2.13.0") in pins
    assert [f"{name}=={version}" for name, version in pins if "+" in version] == []
    assert not [name for name, _ in pins if name.startswith("nvidia-")]  # resolved for the CPU build
