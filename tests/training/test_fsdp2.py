"""FSDP2 on two CPU processes (gloo): the policy shards per decoder layer as accelerate shards it, sampling and the
training forward run on the shards, and the gathered weights and gradient norms equal one unsharded process's.
accelerate itself applies FSDP only on accelerator devices, so this drives ``fully_shard`` directly."""

import subprocess
import sys

import pytest
import torch

from components.training.launch import free_port
from tests.helpers.project import ROOT
from tests.training.fsdp2_worker import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_two_fsdp2_processes_match_one_unsharded_process(tmp_path, lora):
    out = tmp_path / "sharded.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "tests.training.fsdp2_worker", str(out), *(["--lora"] if lora else [])]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    sharded, single = torch.load(out), train(lora=lora)
    assert sharded["rewards"] == pytest.approx(single["rewards"][:1] + single["rewards"][2:3], abs=1e-5)
    assert sharded["grad_norms"] == pytest.approx(single["grad_norms"], rel=1e-5)
    assert sharded["weights"].keys() == single["weights"].keys()
    assert not any("lora" in k for k in sharded["weights"])  # merged into the base weights
    worst = max((sharded["weights"][k] - single["weights"][k]).abs().max().item() for k in single["weights"])
    assert worst < 1e-5, f"weights differ by {worst}"
