"""One pipeline per project: a second run waits for the lock and is refused after its wait, naming the holder; the
lock is released when its holder exits, even when killed."""

import os
import signal
import subprocess
import sys
import time

import pytest

from components.release.run_lock import PipelineLocked, project_lock

HOLD = """
import sys, time
from components.release.run_lock import project_lock
with project_lock(sys.argv[1], holder="flow run abc"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_is_refused_with_the_holder_named(tmp_path):
    path = tmp_path / "pipeline.lock"
    holder = hold(path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(PipelineLocked, match="flow run abc") as err, project_lock(path, wait_s=0.5):
            pass
        assert time.monotonic() - start >= 0.5 and f'"pid": {holder.pid}' in str(err.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_waiting_run_proceeds_when_the_holder_finishes(tmp_path):
    path = tmp_path / "pipeline.lock"
    holder = hold(path, 1.5)
    start = time.monotonic()
    with project_lock(path, wait_s=30):
        waited = time.monotonic() - start
    holder.wait()
    assert 0.5 < waited < 30


def test_a_killed_holder_releases_the_lock(tmp_path):
    path = tmp_path / "pipeline.lock"
    holder = hold(path, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with project_lock(path, wait_s=0):
        assert str(os.getpid()) in path.read_text()
