"""Real service processes for integration tests, started and stopped by the tests themselves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server and every process it spawned (it runs in its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend and served artifacts; yields its URL."""
    port = free_port()
    log = root / "mlflow-server.log"
    cmd = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root}/server.db",
        "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/health", proc, log)
        yield url
    finally:
        stop(proc)


@contextmanager
def prefect_server(root: Path, env: dict[str, str]) -> Iterator[str]:
    """``prefect server start`` with its own home (SQLite database), scheduler on; yields its API URL."""
    port = free_port()
    log = root / "prefect-server.log"
    server_env = env | {"PREFECT_HOME": str(root / "prefect-home"), "PREFECT_UI_ENABLED": "false",
                        "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    server_env.pop("PREFECT_API_URL", None)
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=root, env=server_env
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_until_healthy(f"{url}/health", proc, log)
        yield url
    finally:
        stop(proc)


def run_table(uri: str, run_id: str, artifact_file: str):
    """An MLflow table logged to a run, as a DataFrame. MlflowClient.load_table searches runs through the fluent
    API, which reads the global tracking URI, so the client's URI is set around it."""
    from mlflow import MlflowClient

    from components.release.tracking import tracking_uri_scope

    client = MlflowClient(tracking_uri=uri)
    with tracking_uri_scope(uri):
        return client.load_table(client.get_run(run_id).info.experiment_id, artifact_file, run_ids=[run_id])
