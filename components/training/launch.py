"""Setting a training process up: the accelerator, the trainable policy, and the multi-process relaunch.

With ``num_processes > 1`` a stage started as a plain process runs itself again under ``accelerate launch``
(data parallel; on a GPU machine one process per GPU, on CPU gloo ranks through infra/accelerate/cpu_ddp.yaml; over
several machines, the same stage on each with its EBFT_MACHINE_RANK).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs

from components.training.config import TrainerConfig
from components.training.lora import add_lora

ROOT = Path(__file__).resolve().parents[2]


def launched() -> bool:
    """True inside a process that ``accelerate launch`` (or torchrun) started."""
    return "LOCAL_RANK" in os.environ


def relaunch(module: str, params_path: str, config: TrainerConfig) -> None:
    """Run ``python -m module --params params_path`` under ``accelerate launch`` with ``config.num_processes``."""
    launcher = launch_command(module, params_path, config, os.environ, torch.cuda.is_available())
    print(f"train: relaunching with {config.num_processes} processes: {' '.join(launcher)}")
    done = subprocess.run(launcher)
    if done.returncode != 0:
        raise RuntimeError(f"distributed training failed (accelerate launch exit {done.returncode}); see output above")


def launch_command(
    module: str, params_path: str, config: TrainerConfig, env: Mapping[str, str], cuda: bool
) -> list[str]:
    """The ``accelerate launch`` command line: the launch config file (``train.accelerate_config``; on CPU the gloo
    one), and where the processes meet from ``train.launch``, the environment (EBFT_*) or the config file, in that
    order of precedence: environment, params, file."""
    config_file = launch_config_file(config.accelerate_config) if config.accelerate_config else None
    config_file = config_file or (None if cuda else str(ROOT / "infra/accelerate/cpu_ddp.yaml"))
    in_file = yaml.safe_load(Path(config_file).read_text()) or {} if config_file else {}
    launch = config.launch
    machines = _int_env(env, "EBFT_NUM_MACHINES", launch.num_machines) or in_file.get("num_machines") or 1
    rank = _int_env(env, "EBFT_MACHINE_RANK", 0)
    ip = env.get("EBFT_MAIN_PROCESS_IP") or launch.main_process_ip
    port = _int_env(env, "EBFT_MAIN_PROCESS_PORT", launch.main_process_port) or in_file.get("main_process_port")
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", str(config.num_processes)]
    cmd += ["--config_file", config_file] if config_file else ["--multi_gpu"]
    if machines > 1:
        ip = ip or in_file.get("main_process_ip")
        if not ip:
            raise ValueError(
                f"train.launch.num_machines={machines} needs the rank-0 machine's address: set "
                "train.launch.main_process_ip or EBFT_MAIN_PROCESS_IP"
            )
        if not 0 <= rank < machines:
            raise ValueError(f"EBFT_MACHINE_RANK={rank}: with {machines} machines it is 0..{machines - 1}")
        if config.num_processes % machines:
            raise ValueError(
                f"train.num_processes={config.num_processes} (all machines together) is not a multiple of "
                f"{machines} machines"
            )
        cmd += ["--num_machines", str(machines), "--machine_rank", str(rank), "--main_process_ip", str(ip)]
        cmd += ["--main_process_port", str(port or 29500)]
    else:
        cmd += ["--main_process_port", str(port or free_port())]  # free: parallel runs on one machine do not collide
    return [*cmd, "-m", module, "--params", params_path]


def launch_config_file(name: str) -> str:
    """``train.accelerate_config`` as a path: as given, else relative to this project (so
    ``infra/accelerate/deepspeed_zero2.yaml`` works from a run folder too)."""
    for path in (Path(name), ROOT / name):
        if path.is_file():
            return str(path)
    known = ", ".join(sorted(f"infra/accelerate/{p.name}" for p in (ROOT / "infra/accelerate").glob("*.yaml")))
    raise ValueError(f"train.accelerate_config={name!r}: no such file here or in {ROOT}; the project's: {known}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _int_env(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None


def new_accelerator(mixed_precision: str) -> Accelerator:
    """``auto``: bf16 autocast on GPU, fp32 on CPU. Under a DeepSpeed launch config without a GPU, DeepSpeed's CPU
    accelerator over gloo (accelerate takes the DeepSpeed path only when not told to use the CPU)."""
    gpu = torch.cuda.is_available()
    precision = ("bf16" if gpu else "no") if mixed_precision == "auto" else mixed_precision
    if not gpu and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        gloo = InitProcessGroupKwargs(backend="gloo")
        return Accelerator(cpu=False, mixed_precision=precision, kwargs_handlers=[gloo])
    return Accelerator(cpu=not gpu, mixed_precision=precision)


def prepare_policy(lm: torch.nn.Module, gradient_checkpointing: bool, peft_config=None) -> torch.nn.Module:
    """The language model to train, in train mode, with activation checkpointing and a peft ``LoraConfig``'s
    adapters as configured. Weights stay as given (fp32 master weights; bf16 comes from autocast on GPU)."""
    if gradient_checkpointing:
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if peft_config is not None:
        lm = add_lora(lm, peft_config)
    return lm.train()
