"""The sandboxed function as the tests see it: a callable that sends plain arguments to the sandbox harness and
returns its plain result (docs/evaluation.md, "Trusted verdicts")."""

from __future__ import annotations

import builtins
import contextlib
import os
import select
import subprocess
import time

from components.evaluation import sandbox_values


class CandidateGone(Exception):
    """The sandboxed program died or broke the reply protocol."""


class CandidateTimeout(Exception):
    pass


class SandboxedFunction:
    """The function in the sandbox, called from here: arguments and results cross as plain values only."""

    MAX_REPLY = 8 << 20

    def __init__(self, proc: subprocess.Popen, deadline: float):
        self.proc, self.deadline, self.buffer = proc, deadline, b""

    def __call__(self, *args, **kwargs):
        request = sandbox_values.dumps({"args": sandbox_values.encode(list(args)),
                                        "kwargs": sandbox_values.encode(kwargs)})  # fmt: skip
        try:
            self.proc.stdin.write(request.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise CandidateGone from None
        try:
            reply = sandbox_values.loads(self._line())
            if type(reply) is not dict or len(reply) != 1:
                raise ValueError("not a reply")
            if "value" in reply:
                return sandbox_values.decode(reply["value"])
            name, message = reply["raised"]
        except (ValueError, TypeError, KeyError) as err:
            raise CandidateGone(f"malformed reply ({err})") from None
        raise rebuilt_exception(str(name), str(message))

    def _line(self) -> str:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = self.deadline - time.perf_counter()
            if left <= 0:
                raise CandidateTimeout
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise CandidateTimeout
            chunk = os.read(fd, 1 << 16)
            if not chunk or len(self.buffer) > self.MAX_REPLY:
                raise CandidateGone
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace")


def rebuilt_exception(name: str, message: str) -> Exception:
    """The candidate's exception as one the tests can catch: the builtin of that name, else a RuntimeError."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
        with contextlib.suppress(Exception):
            return kind(message)
    return RuntimeError(f"{name}: {message}")
