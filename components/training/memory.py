"""Peak memory of the running process: CUDA allocator statistics on GPU, the RSS high-water mark on CPU (Linux)."""

from __future__ import annotations

from pathlib import Path

import torch


def reset_peak_memory(device: str | torch.device) -> float:
    """Start a fresh peak window; returns the current usage in MB."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM
            f.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def peak_memory(device: str | torch.device) -> float:
    """Peak usage in MB since the last reset (0 where the OS does not say)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return _status_mb("VmHWM")


def _status_mb(field: str) -> float:
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0
