"""The accelerate relaunch: where the processes meet comes from the environment, params.yaml or the launch config."""

import pytest

from components.training.config import TrainerConfig
from components.training.launch import ROOT, launch_command

MULTI_NODE = str(ROOT / "infra/accelerate/multi_node_ddp.yaml")


def command(env=None, cuda=True, **train) -> list[str]:
    return launch_command("flows.train", "params.yaml", TrainerConfig(**train), env or {}, cuda)


def flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_one_machine_gets_a_free_port_unless_one_is_set():
    cpu = command(cuda=False, num_processes=2)
    assert flag(cpu, "--config_file").endswith("cpu_ddp.yaml") and int(flag(cpu, "--main_process_port")) > 0
    assert "--num_machines" not in cpu and cpu[-4:] == ["-m", "flows.train", "--params", "params.yaml"]
    gpu = command(num_processes=8, launch={"main_process_port": 29555})
    assert "--multi_gpu" in gpu and flag(gpu, "--main_process_port") == "29555"
    assert flag(command({"EBFT_MAIN_PROCESS_PORT": "29600"}, num_processes=8), "--main_process_port") == "29600"


def test_several_machines_take_rank_from_the_environment_and_the_rest_from_the_config_file():
    node = command({"EBFT_MACHINE_RANK": "1"}, num_processes=16, accelerate_config=MULTI_NODE)
    assert [flag(node, f) for f in ("--num_machines", "--machine_rank", "--main_process_ip", "--main_process_port")] \
        == ["2", "1", "10.0.0.1", "29500"]  # fmt: skip
    mine = command({"EBFT_MAIN_PROCESS_IP": "192.168.1.5"}, num_processes=4, launch={"num_machines": 2})
    assert flag(mine, "--main_process_ip") == "192.168.1.5" and flag(mine, "--machine_rank") == "0"


@pytest.mark.parametrize(
    ("env", "train", "message"),
    [
        ({}, {"launch": {"num_machines": 2}}, "needs the rank-0 machine's address"),
        ({"EBFT_MACHINE_RANK": "2"}, {"accelerate_config": MULTI_NODE}, "EBFT_MACHINE_RANK=2: with 2 machines"),
        ({"EBFT_MACHINE_RANK": "one"}, {"accelerate_config": MULTI_NODE}, "EBFT_MACHINE_RANK='one' is not a whole"),
        ({}, {"accelerate_config": MULTI_NODE, "num_processes": 3}, "num_processes=3 .* not a multiple of 2"),
    ],
)
def test_launches_that_cannot_meet_are_refused_before_starting(env, train, message):
    with pytest.raises(ValueError, match=message):
        command(env, **({"num_processes": 16} | train))
