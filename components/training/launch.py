"""Setting a training process up: the accelerator, the trainable policy, and the multi-process relaunch.

With ``num_processes > 1`` a stage started as a plain process runs itself again under ``accelerate launch``
(data parallel; on a GPU machine one process per GPU, on CPU gloo ranks through infra/accelerate/cpu_ddp.yaml).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from components.training.config import TrainerConfig
from components.training.lora import add_lora

ROOT = Path(__file__).resolve().parents[2]


def launched() -> bool:
    """True inside a process that ``accelerate launch`` (or torchrun) started."""
    return "LOCAL_RANK" in os.environ


def relaunch(module: str, params_path: str, config: TrainerConfig) -> None:
    """Run ``python -m module --params params_path`` under ``accelerate launch`` with ``config.num_processes``."""
    with socket.socket() as s:  # a free rendezvous port, so parallel runs do not collide
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", str(config.num_processes)]
    launch_config = config.accelerate_config or (
        None if torch.cuda.is_available() else str(ROOT / "infra/accelerate/cpu_ddp.yaml")
    )
    launcher += ["--config_file", launch_config] if launch_config else ["--multi_gpu"]
    launcher += ["--main_process_port", str(port), "-m", module, "--params", params_path]
    print(f"train: relaunching with {config.num_processes} processes: {' '.join(launcher)}")
    done = subprocess.run(launcher)
    if done.returncode != 0:
        raise RuntimeError(f"distributed training failed (accelerate launch exit {done.returncode}); see output above")


def new_accelerator(mixed_precision: str) -> Accelerator:
    """``auto``: bf16 autocast on GPU, fp32 on CPU."""
    gpu = torch.cuda.is_available()
    precision = ("bf16" if gpu else "no") if mixed_precision == "auto" else mixed_precision
    return Accelerator(cpu=not gpu, mixed_precision=precision)


def prepare_policy(lm: torch.nn.Module, gradient_checkpointing: bool, peft_config=None) -> torch.nn.Module:
    """The language model to train, in train mode, with activation checkpointing and a peft ``LoraConfig``'s
    adapters as configured. Weights stay as given (fp32 master weights; bf16 comes from autocast on GPU)."""
    if gradient_checkpointing:
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if peft_config is not None:
        lm = add_lora(lm, peft_config)
    return lm.train()
