"""Running untrusted (model-generated) Python programs.

Every program runs in its own process tree in a fresh temporary folder, with:
- resource limits (rlimits, inherited by everything it starts): CPU seconds, address space, process count, file size,
  no core dumps;
- a clean environment (no inherited credentials or secrets);
- as an unprivileged user of its own, drawn at random for the run, when the evaluator runs as root: its folder (mode
  0700) and its process-count limit are its own, so concurrent runs cannot touch each other's files or starve each
  other of processes;
- fresh user, network, PID and mount namespaces (util-linux ``unshare``) where the kernel allows: no network at all,
  no process outside the namespace to see or signal (a private /proc), private size-limited /tmp, /var/tmp and
  /dev/shm that vanish with the run; the namespace, and with it every process the program started, dies when the
  sandbox is killed;
- a wall-clock limit, after which the whole process group is killed.

Where namespaces are unavailable the sandbox says so (``isolation``) and falls back to rlimits, the unprivileged user
and a Python-level block on sockets. The verdict needs a per-run nonce that the harness prints only after the program
and its tests ran to completion, so exiting early (``sys.exit(0)``, ``os._exit(0)``) cannot pass.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from components.evaluation import sandbox_harness

Status = Literal["pass", "fail", "timeout", "error"]
# imported, never run here: so the import graph (and the evaluate stage's DVC deps) include the harness file
HARNESS = Path(sandbox_harness.__file__)
NOBODY = 65534
RUN_UIDS = (1 << 20, 1 << 30)  # each run as a user drawn from this range (when the evaluator runs as root)


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 2048
    max_processes: int = 64
    max_file_mb: int = 4


@dataclass(frozen=True)
class RunResult:
    status: Status
    reason: str
    seconds: float


_PROBE_LOCK = threading.Lock()  # evaluation runs sandboxes from worker threads; probe once


def _interpreter() -> tuple[list[str], dict[str, str]]:
    with _PROBE_LOCK:
        return _probe_interpreter()


@functools.cache
def _probe_interpreter() -> tuple[list[str], dict[str, str]]:
    """A Python the sandbox user can execute, and the environment that gives it this project's packages.

    Dropped to ``nobody``, the program may not be able to reach this process's interpreter (a venv whose base Python
    sits under a private home, e.g. /root); then the system Python of the same version runs it, with this
    environment's site-packages on PYTHONPATH (same ABI, so compiled packages load)."""
    global _INTERPRETER
    if _INTERPRETER is None:
        site = sysconfig.get_paths()["purelib"]
        candidates = [([sys.executable, "-s", "-B"], {"PYTHONPATH": site})]
        system = shutil.which(
            f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin"
        )
        if system and os.path.realpath(system) != os.path.realpath(sys.executable):
            candidates.append(([system, "-s", "-B"], {"PYTHONPATH": site}))
        _INTERPRETER = candidates[0]
        for argv, env in candidates:
            try:
                probe = subprocess.run(
                    [*argv, "-c", "import sys"], env=env, capture_output=True, timeout=20, preexec_fn=_drop_privileges
                )
            except (OSError, subprocess.SubprocessError):
                continue
            if probe.returncode == 0:
                _INTERPRETER = (argv, env)
                break
    return _INTERPRETER


_INTERPRETER: tuple[list[str], dict[str, str]] | None = None


def _namespace_prefix() -> tuple[str, ...]:
    with _PROBE_LOCK:
        return _probe_namespaces()


@functools.cache
def _probe_namespaces() -> tuple[str, ...]:
    """``unshare`` arguments that work on this machine (probed once per process), or () where none do."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    candidate = (unshare, "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc")
    try:
        ok = subprocess.run([*candidate, "true"], capture_output=True, timeout=10, preexec_fn=_drop_privileges)
    except (OSError, subprocess.SubprocessError):
        return ()
    return candidate if ok.returncode == 0 else ()


def isolation() -> str:
    """How isolated sandboxed programs are on this machine (for logs and the evaluation record)."""
    parts = ["rlimits", "clean environment"]
    if os.geteuid() == 0:
        parts.append("a user of its own per run")
    if _namespace_prefix():
        parts.append("user/net/pid namespaces, private /proc, /tmp and /dev/shm")
    else:
        parts.append("socket block (no namespaces available)")
    return ", ".join(parts)


def _drop_privileges(uid: int = NOBODY) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _run_uid() -> int:
    """A user id no other run has: its files and its process limit are its own (RLIMIT_NPROC counts per user, so a
    fork bomb in one run cannot starve the runs beside it, and no run can write another's folder)."""
    return RUN_UIDS[0] + secrets.randbelow(RUN_UIDS[1] - RUN_UIDS[0])


def _limits(limits: SandboxLimits, uid: int):
    def apply() -> None:
        os.setsid()  # its own process group, killed as a whole
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_mb * mb, limits.max_file_mb * mb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _drop_privileges(uid)
        # Counted per user: after dropping to the run's own user, this bounds the program's whole process tree.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))

    return apply


def _clean_env(folder: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(folder),
        "TMPDIR": str(folder),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def _isolation_env() -> dict[str, str]:
    """With namespaces the harness mounts a private /tmp (where HOME and TMPDIR then point); without, it blocks
    sockets at the Python level."""
    if _namespace_prefix():
        return {"EBFT_SANDBOX_PRIVATE_TMP": "1", "HOME": "/tmp", "TMPDIR": "/tmp"}
    return {"EBFT_SANDBOX_BLOCK_SOCKETS": "1"}


def run_program(program: str, limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Run ``program`` (Python source) in the sandbox; pass only if it ran to the end without an exception."""
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="ebft-sandbox-"))  # mode 0700
    uid = _run_uid()
    try:
        if os.geteuid() == 0:
            os.chown(folder, uid, uid)
        (folder / "solution.py").write_text(program)
        shutil.copy(HARNESS, folder / "harness.py")  # readable by the sandbox user wherever the project lives
        nonce = secrets.token_hex(16)
        out_path, err_path = folder / "stdout.txt", folder / "stderr.txt"
        python, python_env = _interpreter()
        cmd = [*_namespace_prefix(), *python, str(folder / "harness.py"), str(folder / "solution.py")]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=folder,
                env=_clean_env(folder) | python_env | _isolation_env(),
                preexec_fn=_limits(limits, uid),
            )
            try:
                proc.stdin.write(f"{nonce}\n".encode())
                proc.stdin.close()
            except OSError:
                pass  # it died before reading its nonce: judged below
            try:
                code = proc.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return RunResult("timeout", f"no result after {limits.wall_seconds:g} s wall clock", _since(start))
        _kill_group(proc)  # anything it left running in its group
        return _verdict(code, nonce, out_path, err_path, _since(start))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(path: Path, limit: int = 4096) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - limit))
        return f.read().decode("utf-8", errors="replace")


def _verdict(code: int, nonce: str, out_path: Path, err_path: Path, seconds: float) -> RunResult:
    stdout, stderr = _tail(out_path), _tail(err_path)
    lines = stdout.strip().splitlines()
    if code == 0 and lines and lines[-1].strip() == nonce:
        return RunResult("pass", "", seconds)
    if code < 0 or code > 128:
        signum = -code if code < 0 else code - 128
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        reason = {
            "SIGXCPU": "CPU time limit exceeded",
            "SIGXFSZ": "output or file size limit exceeded",
            "SIGKILL": "killed (CPU or memory limit, or by itself)",
        }.get(name, f"killed by {name}")
        return RunResult("error", reason, seconds)
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if last.startswith("AssertionError"):
        return RunResult("fail", last[:300], seconds)
    if code == 0:
        return RunResult("error", "exited before its tests completed", seconds)
    return RunResult("error", last[:300] or f"exit status {code}", seconds)
