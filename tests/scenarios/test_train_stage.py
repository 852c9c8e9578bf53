"""The training stage on the tiny project: EBFT and SFT train and save, a killed run resumes to the same weights,
two processes match one, and impossible settings stop before any compute."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

from components.method.feature_cache import FeatureCacheError
from components.params.loading import ParamsError
from flows import train
from tests.helpers.project import ROOT, link_inputs, write_params

pytestmark = pytest.mark.slow


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert worst <= atol, f"weights differ by {worst}"


def run_stage(cwd: Path, *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    cmd = [sys.executable, "-m", "flows.train", *args]
    if wait:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_when(proc: subprocess.Popen, marker: Path, timeout_s: float = 300) -> None:
    """SIGKILL the stage's whole process group as soon as ``marker`` exists (whatever it is doing then)."""
    deadline = time.time() + timeout_s
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_ebft_and_sft_train_track_and_save(workdir, monkeypatch):
    # No tracking URI anywhere (a new user's shell): both runs must land in the default ./mlruns.db, even though
    # logging the first model sets and restores MLflow's global URI.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    write_params(workdir / "params.yaml", {"train": {"steps": 3, "log_samples_every": 2}})
    record = train.run()
    assert "MLFLOW_TRACKING_URI" not in os.environ and not (workdir / "mlflow.db").exists()
    assert set(record) == {"ebft", "sft"}
    for method in ("ebft", "sft"):
        assert (workdir / "models/trained" / method / "model.safetensors").exists()
        assert (workdir / "models/trained" / method / "tokenizer.json").exists()
        curve = (workdir / "metrics/train_curves" / f"{method}.csv").read_text().splitlines()
        assert len(curve) == 4 and curve[0].startswith("step,loss,ce")
    summary = json.loads((workdir / "metrics/train.json").read_text())
    assert summary["ebft"]["steps"] == 3 and "reward" in summary["ebft"]["final"]
    # both methods saw the same chunks first: equal CE before any update
    assert summary["ebft"]["first"]["ce"] == pytest.approx(summary["sft"]["first"]["ce"], abs=1e-5)

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns.db")
    assert client.get_run(summary["sft"]["mlflow_run_id"]).info.status == "FINISHED"
    run = client.get_run(summary["ebft"]["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert {"git_commit", "base_model.sha256", "data.train.sha256", "features.cache_digest", "method"} <= set(
        run.data.tags
    )
    assert run.data.params["train.sampling.n_samples"] == "4" and len(run.data.params) > 40
    for key in ("pg_loss", "ce", "kl", "reward", "alignment", "diversity", "advantage_std", "grad_norm", "lr",
                "tokens_per_s/sample", "tokens_per_s/features", "tokens_per_s/update", "peak_memory_mb"):  # fmt: skip
        assert len(client.get_metric_history(run.info.run_id, key)) == 3, key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "rollouts")}
    assert artifacts == {"rollouts/step_00002.json", "rollouts/step_00003.json"}
    assert summary["ebft"]["model_uri"].startswith("models:/")


def test_killed_run_resumes_to_the_same_weights(workdir, tmp_path_factory):
    overrides = {
        "train": {"methods": ["ebft"], "steps": 6, "checkpoint_every": 2, "keep_checkpoints": 2},
        "tracking": {"log_model": False},
    }
    reference = link_inputs(workdir, tmp_path_factory.mktemp("uninterrupted"))
    write_params(reference / "params.yaml", overrides)
    run_stage(reference)

    write_params(workdir / "params.yaml", overrides)
    # killed whatever it is doing then: training step 3, or writing checkpoint 4
    kill_when(run_stage(workdir, wait=False), workdir / "checkpoints/ebft/step-000002/state.json")
    assert not (workdir / "models/trained").exists()  # nothing half-written

    resumed = run_stage(workdir)
    assert "resuming from checkpoints/ebft/step-00000" in resumed.stdout + resumed.stderr
    assert_same_weights(workdir / "models/trained/ebft", reference / "models/trained/ebft")

    def curve(folder: Path) -> list[list[str]]:  # every column but the wall-clock one (the last)
        return [row.split(",")[:-1] for row in (folder / "metrics/train_curves/ebft.csv").read_text().splitlines()]

    assert [row[0] for row in curve(workdir)[1:]] == ["1", "2", "3", "4", "5", "6"]  # history survived the kill
    assert curve(workdir) == curve(reference)  # and the resumed steps reproduce the uninterrupted run's metrics
    assert not (workdir / "checkpoints/ebft").exists()  # removed once the stage's outputs were committed


def test_two_processes_match_one_process_under_ddp_and_deepspeed_zero2(workdir, tmp_path_factory):
    # Same global batch (2 chunks per step); one process does them as two micro-batches, two processes one each.
    common = {"methods": ["ebft"], "steps": 3, "rollouts_per_step": 8, "micro_batch_chunks": 1}
    single = link_inputs(workdir, tmp_path_factory.mktemp("one-process"))
    write_params(single / "params.yaml", {"train": common, "tracking": {"log_model": False}})
    run_stage(single)
    one = json.loads((single / "metrics/train.json").read_text())["ebft"]["final"]
    for launch_config, distribution in [
        (None, "MULTI_CPU"),
        ("infra/accelerate/cpu_deepspeed_zero2.yaml", "DEEPSPEED"),
    ]:
        folder = link_inputs(workdir, tmp_path_factory.mktemp(distribution.lower()))
        two = {"num_processes": 2, "accelerate_config": launch_config and str(ROOT / launch_config)}
        write_params(folder / "params.yaml", {"train": common | two, "tracking": {"log_model": False}})
        out = run_stage(folder)
        assert "relaunching with 2 processes" in out.stdout
        assert f"2 process(es) on cpu, {distribution}" in out.stdout + out.stderr
        assert_same_weights(folder / "models/trained/ebft", single / "models/trained/ebft", atol=1e-6)
        got = json.loads((folder / "metrics/train.json").read_text())["ebft"]["final"]
        for key in ("reward", "loss", "grad_norm"):
            assert got[key] == pytest.approx(one[key], abs=1e-5), (distribution, key)


def test_a_cache_built_for_other_settings_stops_before_training(workdir):
    write_params(workdir / "params.yaml", {"features": {"pooling": "mean"}})
    with pytest.raises(FeatureCacheError, match=r"pooling \('last_token' cached, 'mean' now\)"):
        train.run()
    assert not (workdir / "checkpoints").exists() and not (workdir / "models/trained").exists()


def test_missing_hidden_states_stop_before_training(workdir):
    write_params(workdir / "params.yaml", {"features": {"layers": [1, 40]}})
    with pytest.raises(ValueError, match=r"\[40\] do not exist"):
        train.run()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": {"rollouts_per_step": 10}}, "not divisible by train.sampling.n_samples=4"),
        ({"train": {"sampling": {"n_samples": 2}, "rollouts_per_step": 8}}, "diversity baseline needs n_samples >= 3"),
        ({"train": {"num_processes": 3}}, "cannot be split over train.num_processes=3"),
    ],
)
def test_impossible_batch_settings_are_refused(workdir, overrides, message):
    write_params(workdir / "params.yaml", overrides)
    with pytest.raises(ParamsError, match=message):
        train.run()


def test_lora_and_gradient_checkpointing(workdir):
    write_params(
        workdir / "params.yaml",
        {
            "train": {
                "methods": ["ebft"],
                "steps": 2,
                "gradient_checkpointing": True,  # with the cached forward (tests/engine/test_oracle.py)
                "lora": {"enabled": True, "r": 4, "alpha": 8},
            },
            "tracking": {"log_model": False},
        },
    )
    record = train.run()
    assert record["ebft"]["steps"] == 2
    saved = weights(workdir / "models/trained/ebft")
    assert not any("lora" in k for k in saved)  # adapters merged into plain weights
    base = weights(workdir / "models/base")
    changed = [k for k in saved if "q_proj" in k and not torch.equal(saved[k], base[k])]
    assert changed and all(torch.equal(saved[k], base[k]) for k in saved if "mlp" in k)


def test_lora_on_all_linear_layers_keeps_an_adapter_that_loads_over_the_base_model(workdir):
    from peft import PeftModel

    from components.data.model_loading import load_model

    lora = {"enabled": True, "r": 4, "alpha": 8, "target_modules": "all-linear", "save_adapter": True}
    write_params(workdir / "params.yaml", {"train": {"methods": ["sft"], "steps": 2, "optimizer": {"lr": 1e-2},
                                                    "lora": lora}, "tracking": {"log_model": False}})  # fmt: skip
    train.run()
    out = workdir / "models/trained/sft"
    config = json.loads((out / "adapter/adapter_config.json").read_text())
    assert {"q_proj", "o_proj", "gate_proj", "down_proj"} <= set(config["target_modules"])
    saved, base = weights(out), weights(workdir / "models/base")
    assert any(not torch.equal(saved[k], base[k]) for k in saved if "mlp" in k)  # all-linear reached the MLP
    ids = torch.randint(3, 200, (1, 12))
    over_base = PeftModel.from_pretrained(load_model(workdir / "models/base", "float32", "cpu"), out / "adapter")
    with torch.no_grad():
        expected = load_model(out, "float32", "cpu")(ids).logits
        assert torch.allclose(over_base(ids).logits, expected, atol=1e-4)


def test_checkpoints_of_other_settings_and_partial_writes_are_not_resumed(workdir, capsys):
    from components.data.model_loading import load_model
    from components.engine.policy import StridedPolicy
    from components.params.loading import load_params
    from components.training.checkpointing import TrainingState, save_checkpoint
    from components.training.launch import new_accelerator, prepare_policy

    # A finished checkpoint of a run with other settings, and what a kill during a checkpoint write leaves.
    params = load_params("params.yaml")
    accelerator = new_accelerator(params.train.mixed_precision)
    lm = prepare_policy(load_model("models/base", "float32", accelerator.device), gradient_checkpointing=False)
    accelerator.prepare(StridedPolicy(lm))
    save_checkpoint(accelerator, workdir / "checkpoints/sft", TrainingState(step=4, fingerprint="other"))
    (workdir / "checkpoints/sft/.step-000002.tmp").mkdir()
    write_params(workdir / "params.yaml", {"train": {"methods": ["sft"], "steps": 2}, "tracking": {"log_model": False}})
    train.run()
    out = capsys.readouterr().out
    assert "removed checkpoints/sft/.step-000002.tmp" in out and "removed checkpoints/sft/step-000004" in out
    assert json.loads((workdir / "metrics/train.json").read_text())["sft"]["steps"] == 2


def test_the_run_fingerprint_changes_with_code_params_and_data(workdir):
    from components.params.loading import load_params
    from components.project.code_deps import code_hash
    from components.training.checkpointing import run_fingerprint as fingerprint

    def run_fingerprint(params, base_sha, data_sha):  # as the train stage computes it
        return fingerprint(code_hash("train"), params.training_settings(), base_sha, data_sha)

    params = load_params("params.yaml")
    base = run_fingerprint(params, "base", "data")
    assert base == run_fingerprint(params, "base", "data") and len(code_hash("train")) == 64
    assert base != run_fingerprint(params, "base", "other data")
    assert base != run_fingerprint(params, "other base", "data")
    changed = params.model_copy(update={"train": params.train.model_copy(update={"steps": 99})})
    assert base != run_fingerprint(changed, "base", "data")
    resume_only = params.model_copy(update={"train": params.train.model_copy(update={"checkpoint_every": 5})})
    assert base == run_fingerprint(resume_only, "base", "data")  # how often to checkpoint does not change the run
