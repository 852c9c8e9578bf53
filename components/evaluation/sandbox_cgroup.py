"""A control group per sandbox run: one memory and one process limit for the run's whole process tree, and a list of
its members that no process inside can leave (so everything it started, daemons included, is killed at the end).

cgroup v1 (memory and pids hierarchies) or v2 (memory.max, pids.max), under the evaluator's own cgroup, where this
process may create groups there (as root, usually). Elsewhere ``RunCgroup.create`` returns None and the sandbox keeps
per-process rlimits and its per-run user (docs/evaluation.md, "What the sandbox needs").
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_groups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    groups = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    return groups


def _layout(memory_bytes: int, processes: int) -> list[tuple[Path, dict[str, str]]] | None:
    groups = _own_groups()
    if "memory" in groups and "pids" in groups and (ROOT / "memory").is_dir() and (ROOT / "pids").is_dir():
        memory = {"memory.limit_in_bytes": str(memory_bytes)}
        return [
            (ROOT / "memory" / groups["memory"].lstrip("/"), memory),
            (ROOT / "pids" / groups["pids"].lstrip("/"), {"pids.max": str(processes)}),
        ]
    unified = ROOT if (ROOT / "cgroup.controllers").exists() else ROOT / "unified"
    if "" in groups and (unified / "cgroup.controllers").exists():
        return [(unified / groups[""].lstrip("/"), {"memory.max": str(memory_bytes), "pids.max": str(processes)})]
    return None


class RunCgroup:
    def __init__(self, dirs: list[Path]):
        self.dirs = dirs

    @classmethod
    def create(cls, memory_bytes: int, processes: int) -> RunCgroup | None:
        """New groups with these limits, or None where this machine does not let us make them."""
        layout = _layout(memory_bytes, processes)
        if layout is None:
            return None
        made = cls([])
        name = f"ebft-sandbox-{secrets.token_hex(6)}"
        try:
            for parent, settings in layout:
                folder = parent / name
                folder.mkdir()
                made.dirs.append(folder)
                for key, value in settings.items():
                    (folder / key).write_text(value)
        except OSError:
            made.remove()
            return None
        return made

    def join(self) -> None:
        """Move the calling process into the groups (run in the child before it executes the program)."""
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def members(self) -> set[int]:
        found = set()
        for folder in self.dirs:
            with contextlib.suppress(OSError):
                found |= {int(pid) for pid in (folder / "cgroup.procs").read_text().split()}
        return found

    def remove(self, patience_s: float = 5.0) -> None:
        """Kill every member until none is left, then delete the groups."""
        deadline = time.monotonic() + patience_s
        while (pids := self.members()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        for folder in reversed(self.dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def oom_killed(self) -> bool:
        """True if the memory limit killed a member (the oom_kill count of v1 memory.oom_control / v2 memory.events)."""
        for folder in self.dirs:
            for name in ("memory.oom_control", "memory.events"):
                with contextlib.suppress(OSError, ValueError):
                    counts = dict(line.split() for line in (folder / name).read_text().splitlines())
                    if int(counts.get("oom_kill", 0)) > 0:
                        return True
        return False
