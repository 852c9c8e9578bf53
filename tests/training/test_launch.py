"""The accelerate relaunch: where the processes meet comes from the environment, params.yaml or the launch config;
every launch config in infra/accelerate/ is one accelerate reads as meant."""

from pathlib import Path

import pytest
import yaml

from components.data.tiny_models import tiny_causal_lm
from components.engine.policy import StridedPolicy
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


def test_a_launch_config_is_found_in_the_project_from_anywhere_and_a_missing_one_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmd = command(num_processes=2, accelerate_config="infra/accelerate/deepspeed_zero2.yaml")
    assert flag(cmd, "--config_file") == str(ROOT / "infra/accelerate/deepspeed_zero2.yaml")
    with pytest.raises(ValueError, match=r"'infra/accelerate/zero9.yaml': no such file.*deepspeed_zero2.yaml"):
        command(num_processes=2, accelerate_config="infra/accelerate/zero9.yaml")


CONFIGS = sorted((ROOT / "infra/accelerate").glob("*.yaml"))


def accelerate_env(config: Path, monkeypatch) -> dict[str, str]:
    """The environment ``accelerate launch --config_file config`` gives its processes (accelerate's own reading)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config), "-m", "flows.train"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:  # what accelerate's launch_command adds before its DeepSpeed launcher
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    return env


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_launch_config_is_one_accelerate_reads(config, monkeypatch):
    env = accelerate_env(config, monkeypatch)
    on_file = yaml.safe_load(config.read_text())
    assert env.get("ACCELERATE_USE_DEEPSPEED", "false") == str(on_file["distributed_type"] == "DEEPSPEED").lower()
    assert env.get("ACCELERATE_USE_FSDP", "false") == str(on_file["distributed_type"] == "FSDP").lower()


def test_fsdp2_config_shards_every_decoder_layer_of_the_policy(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    accelerate_env(ROOT / "infra/accelerate/fsdp2.yaml", monkeypatch)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    policy = StridedPolicy(tiny_causal_lm("qwen2"))
    wraps = fsdp2_prepare_auto_wrap_policy(plugin, policy)
    units = [type(m).__name__ for m in policy.modules() if wraps(m)]
    assert units == ["Qwen2DecoderLayer"] * policy.lm.config.num_hidden_layers


def test_deepspeed_config_is_zero_stage_2_without_offload(monkeypatch):
    from accelerate.utils import DeepSpeedPlugin

    accelerate_env(ROOT / "infra/accelerate/deepspeed_zero2.yaml", monkeypatch)
    plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == 2
    assert plugin.deepspeed_config["zero_optimization"]["offload_optimizer"]["device"] == "none"
