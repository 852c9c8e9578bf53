"""Run the hostile corpus (cases.py) through the sandbox, several at once and beside ordinary samples, and count:
cases, contained, false passes, leaks, and ordinary samples whose verdict changed.

    python -m tests.evaluation.hostile.suite [--workers 2] [--without-namespaces] [--out FILE]

``--without-namespaces`` measures the opt-in fallback (``require_namespaces=False``) on a machine that has them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from components.evaluation import sandbox
from components.evaluation.code_tasks import CodeProblem, humaneval_problems, mbpp_problems
from components.evaluation.sandbox import RunResult, SandboxLimits
from tests.evaluation.hostile.cases import CASES, HostileCase

LIMITS = SandboxLimits(wall_seconds=8, cpu_seconds=8, memory_mb=1024, max_processes=32, max_file_mb=1)
ORDINARY = ("HumanEval/0", "HumanEval/2", "HumanEval/13", "HumanEval/23")  # each run right and wrong


@dataclass
class World:
    """What the hostile programs aim at: a local service, a sentinel process with a secret in its command line, a
    secret in the environment and in a private file."""

    mark: str
    port: int
    secret_file: Path
    sentinel: subprocess.Popen
    connections: list[bytes]

    def tag(self, case: HostileCase) -> str:
        return f"{self.mark}-case{CASES.index(case)}"

    def fill(self, case: HostileCase) -> str:
        return (case.completion.replace("{MARK}", self.tag(case)).replace("{PORT}", str(self.port))
                .replace("{SECRET_FILE}", str(self.secret_file)))  # fmt: skip


@contextmanager
def world():
    mark = f"ebft-hostile-{secrets.token_hex(6)}"
    server = socket.create_server(("127.0.0.1", 0))
    connections: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.settimeout(1)
            try:
                connections.append(conn.recv(100) or b"(connected)")
            except OSError:
                connections.append(b"(connected)")
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    home_secret = Path.home() / f".{mark}"
    home_secret.write_text(f"{mark}-file")
    home_secret.chmod(0o600)
    sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", f"{mark}-cmdline"],
                                start_new_session=True)  # fmt: skip
    os.environ["EBFT_HOSTILE_SECRET"] = f"{mark}-env"
    try:
        yield World(mark, server.getsockname()[1], home_secret, sentinel, connections)
    finally:
        os.environ.pop("EBFT_HOSTILE_SECRET", None)
        sentinel.kill()
        sentinel.wait()
        server.close()
        home_secret.unlink(missing_ok=True)


def _problems() -> dict[str, CodeProblem]:
    return {p.task_id: p for p in humaneval_problems() + mbpp_problems()}


def _leaked(case: HostileCase, result: RunResult, w: World) -> str:
    """What the case got out of its run, or "" if nothing."""
    tag = w.tag(case)
    if case.check == "network" and any(tag.encode() in c for c in w.connections):
        return f"reached 127.0.0.1:{w.port}"
    if case.check == "sentinel" and w.sentinel.poll() is not None:
        return "killed a process outside its run"
    if case.check == "secret" and any(f"{w.mark}-{where}" in result.reason for where in ("file", "env", "cmdline")):
        return f"got out: {result.reason[:120]}"
    if case.check == "memory" and f"HELD-{tag}" in result.reason:
        return "held more memory than its limit"
    if case.check == "daemon" and _processes_with(tag):
        return "a process it started outlived the run"
    if case.check == "tmp":
        left = [f"{d}/{tag}" for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.exists(f"{d}/{tag}")]
        return f"left {left}" if left else ""
    if case.check == "run_lock" and os.path.exists(f"/run/lock/{tag}"):
        return "wrote /run/lock"
    return ""


def _processes_with(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if mark.encode() in cmdline and b"-cmdline" not in cmdline:  # not the sentinel
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def run_suite(workers: int = 2, without_namespaces: bool = False) -> dict:
    problems = _problems()
    with ExitStack() as stack:
        if without_namespaces:
            stack.enter_context(mock.patch.object(sandbox, "_namespace_prefix", lambda: ()))
        limits = SandboxLimits(**{**LIMITS.__dict__, "require_namespaces": not without_namespaces})
        w = stack.enter_context(world())
        jobs = [("hostile", case, problems[case.task_id], w.fill(case)) for case in CASES]
        for task_id in ORDINARY:  # ordinary samples, interleaved so they run beside the hostile ones
            p = problems[task_id]
            jobs.insert(len(jobs) // 2, ("right", None, p, p.reference))
            jobs.append(("wrong", None, p, "    return None\n"))
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda job: job[2].run_tests(job[3], limits), jobs))
        seconds = time.perf_counter() - start
        time.sleep(0.5)  # a daemon that escaped has had time to show up
        rows, disturbed = [], []
        for (role, case, problem, _), result in zip(jobs, results, strict=True):
            if role != "hostile":
                if (role == "right") != (result.status == "pass"):
                    disturbed.append(f"{role} {problem.task_id}: {result.status} {result.reason[:80]}")
                continue
            false_pass = result.status == "pass"
            leak = _leaked(case, result, w)
            rows.append({"case": case.name, "kind": case.kind, "status": result.status, "reason": result.reason[:160],
                         "false_pass": false_pass, "leak": leak, "contained": not false_pass and not leak})  # fmt: skip
    for case in CASES:
        for leftover in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
            Path(f"{leftover}/{w.tag(case)}").unlink(missing_ok=True)
    return {
        "isolation": "fallback (no namespaces, opted in)" if without_namespaces else sandbox.isolation(),
        "workers": workers,
        "cases": len(rows),
        "contained": sum(r["contained"] for r in rows),
        "false_passes": sum(r["false_pass"] for r in rows),
        "leaks": sum(bool(r["leak"]) for r in rows),
        "ordinary_samples": len(jobs) - len(rows),
        "ordinary_disturbed": disturbed,
        "seconds": round(seconds, 1),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--without-namespaces", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    figures = run_suite(args.workers, args.without_namespaces)
    for row in figures["rows"]:
        verdict = "contained" if row["contained"] else ("FALSE PASS" if row["false_pass"] else f"LEAK: {row['leak']}")
        print(f"{verdict:<12} {row['status']:<8} {row['case']}")
    summary = {k: v for k, v in figures.items() if k != "rows"}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
