"""One pipeline run per project at a time: an exclusive ``flock`` on a lock file in the project.

The operating system releases the lock when its holder dies (even on SIGKILL), so a crashed run never blocks the next
one. A second run waits up to ``wait_s`` and is then refused with a message that names the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PipelineLocked(RuntimeError):
    """Another pipeline run holds the project."""


@contextmanager
def project_lock(path: str | Path, wait_s: float = 0.0, holder: str = "") -> Iterator[None]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the lock's whole life
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    who = handle.read().strip() or "unknown"
                    raise PipelineLocked(
                        f"another pipeline run holds {path} ({who}); waited {wait_s:g} s. "
                        "Try again when it finishes, or raise the wait (--lock-wait)."
                    ) from None
                time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        handle.seek(0)
        handle.truncate()
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        handle.write(json.dumps({**info, "run": holder} if holder else info))
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock
