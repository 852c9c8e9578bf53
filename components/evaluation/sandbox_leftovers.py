"""Removing what a finished sandbox run left behind: its process group, every process of its own user, and its
files in the machine's shared folders."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable on most systems


def remove_files_of(uid: int) -> None:
    """Delete what the run's own user left in the shared folders (no other owner can have that user id)."""
    for folder in SHARED_FOLDERS:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)


def kill_user(uid: int) -> None:
    """SIGKILL every process of the run's own user, until none is left (daemons it started outside its group)."""
    for _ in range(50):
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if entry.stat().st_uid == uid:
                        found.append(int(entry.name))
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
