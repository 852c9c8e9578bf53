"""Running untrusted (model-generated) Python programs.

Every program runs in its own process tree in a fresh temporary folder, with:
- resource limits (rlimits, inherited by everything it starts): CPU seconds, address space, process count, file size,
  no core dumps; and, where the machine lets us make control groups, one memory and one process limit for the whole
  run, whose members are all killed at its end (components/evaluation/sandbox_cgroup.py);
- a clean environment (no inherited credentials or secrets);
- as an unprivileged user of its own, drawn at random for the run, when the evaluator runs as root: its folder (mode
  0700) and its process-count limit are its own, so concurrent runs cannot touch each other's files or starve each
  other of processes;
- fresh user, network, PID and mount namespaces (util-linux ``unshare``) where the kernel allows: no network at all,
  no process outside the namespace to see or signal (a private /proc), private size-limited /tmp, /var/tmp and
  /dev/shm that vanish with the run, and every other mount read-only; the namespace, and with it every process the
  program started, dies when the sandbox is killed;
- a wall-clock limit, after which the whole process group is killed.

Where namespaces are unavailable the sandbox refuses to run anything (``SandboxUnavailable``) unless the caller opts
in (``SandboxLimits.require_namespaces=False``); it then runs with rlimits, the per-run user and a Python-level socket
block, which a child interpreter or ctypes gets around (the network stays reachable).

Two ways to judge (docs/evaluation.md, "Trusted verdicts"):
- ``run_calls``: the sandbox only defines the function and answers calls to it with plain values; the tests run here,
  in the evaluator, on builtin values. Nothing the program does can change their verdict.
- ``run_program``: program and tests run together in the sandbox; pass means it printed a per-run nonce after running
  to completion (so exiting early cannot pass). A program that attacks the harness process can forge this.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from components.evaluation import sandbox_harness, sandbox_values
from components.evaluation.sandbox_cgroup import RunCgroup
from components.evaluation.sandbox_leftovers import kill_group, kill_user, remove_files_of
from components.evaluation.sandbox_proxy import CandidateGone, CandidateTimeout, SandboxedFunction

Status = Literal["pass", "fail", "timeout", "error"]
# imported, never run here: so the import graph (and the evaluate stage's DVC deps) include the harness file
HARNESS, VALUES = Path(sandbox_harness.__file__), Path(sandbox_values.__file__)
NOBODY = 65534
RUN_UIDS = (1 << 20, 1 << 30)  # each run as a user drawn from this range (when the evaluator runs as root)


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 2048
    max_processes: int = 64
    max_file_mb: int = 4
    require_namespaces: bool = True  # False: run without user/net/pid namespaces too (the network stays reachable)

    @classmethod
    def per_run(cls, timeout_s: float, memory_mb: int, require_namespaces: bool) -> SandboxLimits:
        """The limits params.yaml sets: wall clock (CPU time follows it), memory, and whether namespaces are a must."""
        return cls(wall_seconds=timeout_s, cpu_seconds=int(timeout_s) + 1, memory_mb=memory_mb,
                   require_namespaces=require_namespaces)  # fmt: skip


class SandboxUnavailable(RuntimeError):
    """This machine cannot isolate generated code as required."""


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
    if _cgroups_available():
        parts.append("a memory and process limit per run (cgroup)")
    if _namespace_prefix():
        parts.append("user/net/pid namespaces, private /proc, /tmp and /dev/shm, read-only host filesystem")
    else:
        parts.append("socket block (no namespaces available)")
    return ", ".join(parts)


@functools.cache
def _cgroups_available() -> bool:
    probe = RunCgroup.create(1 << 30, 8)
    if probe is None:
        return False
    probe.remove()
    return True


def require_isolation(limits: SandboxLimits) -> None:
    """Raise SandboxUnavailable if this machine cannot isolate as ``limits`` requires (checked before any run)."""
    if limits.require_namespaces and not _namespace_prefix():
        raise SandboxUnavailable(
            "generated code is not run here: user, network and PID namespaces are not available (`unshare --user "
            "--net --pid` failed), so a program could reach the network and other processes. Run on a machine that "
            "allows unprivileged user namespaces (e.g. sysctl kernel.unprivileged_userns_clone=1), or accept the "
            "weaker sandbox explicitly with eval.code.require_namespaces: false"
        )


def _drop_privileges(uid: int = NOBODY) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _run_uid() -> int:
    """A user id no other run has: its files and its process limit are its own (RLIMIT_NPROC counts per user, so a
    fork bomb in one run cannot starve the runs beside it, and no run can write another's folder)."""
    return RUN_UIDS[0] + secrets.randbelow(RUN_UIDS[1] - RUN_UIDS[0])


def _limits(limits: SandboxLimits, uid: int, cgroup: RunCgroup | None):
    def apply() -> None:
        os.setsid()  # its own process group, killed as a whole
        if cgroup is not None:
            cgroup.join()
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
    """With namespaces the harness mounts a private /tmp (where HOME, TMPDIR and the working directory then point)
    and makes every other mount read-only; without, it blocks sockets at the Python level."""
    if _namespace_prefix():
        return {"EBFT_SANDBOX_PRIVATE_FS": "1", "HOME": "/tmp", "TMPDIR": "/tmp"}
    return {"EBFT_SANDBOX_BLOCK_SOCKETS": "1"}


@contextlib.contextmanager
def _started(program: str, harness_args: list[str], limits: SandboxLimits, piped: bool) -> Iterator[_Run]:
    """The harness running ``program`` in the sandbox, its stdout a pipe (``piped``) or the run's stdout.txt; on exit
    everything it started is killed and its folder is removed."""
    require_isolation(limits)
    folder = Path(tempfile.mkdtemp(prefix="ebft-sandbox-"))  # mode 0700
    uid = _run_uid()
    cgroup = RunCgroup.create(limits.memory_mb << 20, limits.max_processes)
    run = None
    try:
        if os.geteuid() == 0:
            os.chown(folder, uid, uid)
        (folder / "solution.py").write_text(program)
        for part in (HARNESS, VALUES):  # readable by the sandbox user wherever the project lives
            shutil.copy(part, folder / part.name)
        python, python_env = _interpreter()
        cmd = [*_namespace_prefix(), *python, str(folder / HARNESS.name), *harness_args]
        err_path = folder / "stderr.txt"
        with open(err_path, "wb") as err, open(folder / "stdout.txt", "wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if piped else out,
                stderr=err,
                cwd=folder,
                env=_clean_env(folder) | python_env | _isolation_env(),
                preexec_fn=_limits(limits, uid, cgroup),
            )
        run = _Run(proc, folder, err_path, time.perf_counter() + limits.wall_seconds, cgroup)
        yield run
    finally:
        if run is not None:
            kill_group(run.proc)  # anything it left running in its group
            for pipe in (run.proc.stdin, run.proc.stdout):
                with contextlib.suppress(OSError, AttributeError):
                    pipe.close()
        if cgroup is not None:
            cgroup.remove()  # and everything else it started (daemons that left the group included)
        if os.geteuid() == 0:
            kill_user(uid)
            if not _namespace_prefix():  # with namespaces these were private and are gone already
                remove_files_of(uid)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class _Run:
    proc: subprocess.Popen
    folder: Path
    err_path: Path
    deadline: float
    cgroup: RunCgroup | None

    def left_s(self) -> float:
        return self.deadline - time.perf_counter()


def run_program(program: str, limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Run ``program`` (Python source) in the sandbox; pass only if it ran to the end without an exception."""
    start = time.perf_counter()
    nonce = secrets.token_hex(16)
    with _started(program, ["script", "solution.py"], limits, piped=False) as run:
        try:
            run.proc.stdin.write(f"{nonce}\n".encode())
            run.proc.stdin.close()
        except OSError:
            pass  # it died before reading its nonce: judged below
        try:
            code = run.proc.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            return RunResult("timeout", f"no result after {limits.wall_seconds:g} s wall clock", _since(start))
        kill_group(run.proc)
        return _verdict(code, nonce, run, _since(start))


def run_calls(
    program: str, entry_point: str, tests: Callable[[Callable], None], limits: SandboxLimits = SandboxLimits()
) -> RunResult:
    """Define ``program`` in the sandbox and run ``tests(candidate)`` here, where ``candidate`` calls the sandboxed
    ``entry_point`` with plain values and returns its plain result. Pass if ``tests`` returns; fail on an
    AssertionError; error on anything else (the candidate's own exceptions are raised again here, as the builtin
    exception of the same name)."""
    start = time.perf_counter()
    with _started(program, ["serve", "solution.py", entry_point], limits, piped=True) as run:
        candidate = SandboxedFunction(run.proc, run.deadline)
        try:
            tests(candidate)
        except CandidateTimeout:
            return RunResult("timeout", f"no result after {limits.wall_seconds:g} s wall clock", _since(start))
        except CandidateGone as gone:
            try:  # it exited (early, or after an exception in its own code): judged by how
                code = run.proc.wait(timeout=max(0.05, min(1.0, run.left_s())))
            except subprocess.TimeoutExpired:
                return RunResult("error", f"broke the reply protocol{f': {gone}' if str(gone) else ''}", _since(start))
            return _verdict(code, None, run, _since(start))
        except AssertionError as err:
            return RunResult("fail", f"AssertionError: {err}"[:300], _since(start))
        except Exception as err:  # any other exception in the tests: the candidate misbehaved
            return RunResult("error", f"{type(err).__name__}: {err}"[:300], _since(start))
        return RunResult("pass", "", _since(start))


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _tail(path: Path, limit: int = 4096) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - limit))
        return f.read().decode("utf-8", errors="replace")


def _verdict(code: int, nonce: str | None, run: _Run, seconds: float) -> RunResult:
    stdout = _tail(run.folder / "stdout.txt") if nonce else ""
    stderr = _tail(run.err_path)
    lines = stdout.strip().splitlines()
    if nonce and code == 0 and lines and lines[-1].strip() == nonce:
        return RunResult("pass", "", seconds)
    if run.cgroup is not None and run.cgroup.oom_killed():
        return RunResult("error", "memory limit exceeded", seconds)
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
