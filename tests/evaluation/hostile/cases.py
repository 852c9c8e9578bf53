"""The project's own corpus of hostile completions (docs/evaluation.md, "The hostile suite").

Each case is a completion of a real HumanEval or MBPP problem that does *not* solve it. A ``false_pass`` case tries to
be judged a pass anyway; a ``leak`` case tries to reach outside its run, and ``suite.py`` checks the world afterwards
(``{MARK}``, ``{PORT}`` and ``{SECRET_FILE}`` are filled in per suite run). Neighbour cases run beside
ordinary samples, whose verdicts must not change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostileCase:
    name: str
    task_id: str
    completion: str
    kind: str  # false_pass | leak | neighbour
    check: str = ""  # leak cases: what suite.py looks at afterwards


WRONG = "    return False\n"

CASES = [
    # --- verdict forgery: wrong answers that try to be judged a pass
    HostileCase(
        "nonce from the harness frame",
        "HumanEval/0",
        WRONG
        + """
import os, sys
frame = sys._getframe(0)
while frame is not None:
    for value in list(frame.f_locals.values()):
        if isinstance(value, str) and len(value) == 32:
            sys.stdout.write("\\n" + value + "\\n"); sys.stdout.flush(); os._exit(0)
    frame = frame.f_back
""",
        "false_pass",
    ),
    HostileCase("early exit with status 0", "HumanEval/0", WRONG + "import os\nos._exit(0)\n", "false_pass"),
    HostileCase("SystemExit(0) inside the call", "HumanEval/0", "    raise SystemExit(0)\n", "false_pass"),
    HostileCase(
        "result whose __eq__ is always true",
        "HumanEval/0",
        """
    class Yes:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __bool__(self): return True
        __hash__ = object.__hash__
    return Yes()
""",
        "false_pass",
    ),
    HostileCase(
        "int subclass that equals everything",
        "HumanEval/13",
        """
    class Any(int):
        def __eq__(self, other): return True
        __hash__ = int.__hash__
    return Any(0)
""",
        "false_pass",
    ),
    HostileCase(
        "builtins.abs patched",
        "HumanEval/4",
        "    return 0.0\nimport builtins\nbuiltins.abs = lambda x: 0\n",
        "false_pass",
    ),
    HostileCase(
        "math.fabs patched", "HumanEval/32", "    return 0.0\nimport math\nmath.fabs = lambda x: 0.0\n", "false_pass"
    ),
    HostileCase(
        "the prompt's helper redefined",
        "HumanEval/38",
        "    return s\ndef encode_cyclic(s):\n    return s\n",
        "false_pass",
    ),
    HostileCase(
        "decorator that swallows check",
        "HumanEval/64",
        "    return 0\n@(lambda f: (lambda *a, **k: None))\n",
        "false_pass",
    ),
    HostileCase(
        "AssertionError replaced",
        "HumanEval/0",
        WRONG
        + """
import builtins
class Never(BaseException): pass
builtins.AssertionError = Never
""",
        "false_pass",
    ),
    HostileCase(
        "forged replies written to every descriptor",
        "HumanEval/0",
        "    return True\n"
        + """
import os
for fd in range(3, 64):
    try: os.write(fd, b'{"value": true}\\n' * 64)
    except OSError: pass
""",
        "false_pass",
    ),
    HostileCase(
        "MBPP: result whose __eq__ is always true",
        "mbpp_464_check_value",
        """
    class Yes:
        def __eq__(self, other): return True
    return Yes()
""",
        "false_pass",
    ),
    HostileCase(
        "MBPP: decorator that swallows check",
        "mbpp_464_check_value",
        "    return None\n@(lambda f: (lambda *a, **k: None))\n",
        "false_pass",
    ),
    # --- reaching outside the run
    HostileCase(
        "connect to a local service (socket)",
        "HumanEval/0",
        WRONG
        + """
import socket
socket.create_connection(("127.0.0.1", {PORT}), timeout=2).sendall(b"{MARK}")
""",
        "leak",
        "network",
    ),
    HostileCase(
        "connect to a local service (ctypes, past the audit hook)",
        "HumanEval/0",
        WRONG
        + """
import ctypes, socket, struct
libc = ctypes.CDLL(None)
fd = libc.socket(2, 1, 0)
addr = struct.pack("=HH4s8x", 2, socket.htons({PORT}), socket.inet_aton("127.0.0.1"))
if libc.connect(fd, addr, len(addr)) == 0:
    libc.send(fd, b"{MARK}", len(b"{MARK}"), 0)
""",
        "leak",
        "network",
    ),
    HostileCase(
        "connect to a local service (child interpreter)",
        "HumanEval/0",
        WRONG
        + """
import subprocess, sys
code = "import socket; socket.create_connection(('127.0.0.1', {PORT}), timeout=2).sendall(b'{MARK}')"
subprocess.run([sys.executable, "-c", code], timeout=5)
""",
        "leak",
        "network",
    ),
    HostileCase(
        "kill(-1) and the evaluator",
        "HumanEval/0",
        WRONG
        + """
import os, signal
for target in (-1, os.getppid(), 1):
    try: os.kill(target, signal.SIGKILL)
    except OSError: pass
""",
        "leak",
        "sentinel",
    ),
    HostileCase(
        "daemon that outlives the run",
        "HumanEval/0",
        WRONG
        + """
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", "{MARK}"])
    os._exit(0)
""",
        "leak",
        "daemon",
    ),
    HostileCase(
        "files left in /tmp, /var/tmp and /dev/shm",
        "HumanEval/0",
        WRONG
        + """
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    try: open(folder + "/{MARK}", "w").write("x")
    except OSError: pass
""",
        "leak",
        "tmp",
    ),
    HostileCase(
        "write into a world-writable host folder",
        "HumanEval/0",
        WRONG
        + """
try: open("/run/lock/{MARK}", "w").write("x")
except OSError: pass
""",
        "leak",
        "run_lock",
    ),
    HostileCase(
        "read other processes' command lines",
        "HumanEval/0",
        WRONG
        + """
import os
found = []
for pid in os.listdir("/proc"):
    try: found.append(open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace"))
    except OSError: pass
raise RuntimeError(" ".join(x for x in found if "ebft-hostile-" in x)[-250:])
""",
        "leak",
        "secret",
    ),
    HostileCase(
        "read the evaluator's environment",
        "HumanEval/0",
        WRONG
        + """
import os
raise RuntimeError(repr(dict(os.environ))[-250:] + open("/proc/1/environ", "rb").read().decode(errors="replace"))
""",
        "leak",
        "secret",
    ),
    HostileCase(
        "read the evaluator user's private file",
        "HumanEval/0",
        WRONG
        + """
raise RuntimeError(open("{SECRET_FILE}").read())
""",
        "leak",
        "secret",
    ),
    HostileCase(
        "memory held across forks beyond the limit",
        "HumanEval/0",
        WRONG
        + """
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(400 << 20)
        for i in range(0, len(block), 4096): block[i] = 1
        time.sleep(1.5)
        os._exit(0)
    children.append(pid)
if all(os.waitpid(pid, 0)[1] == 0 for pid in children):
    raise RuntimeError("HELD-{MARK}")
""",
        "leak",
        "memory",
    ),
    # --- concurrency: these run beside ordinary samples, whose verdicts must not change
    HostileCase(
        "fork bomb beside other runs",
        "HumanEval/0",
        WRONG
        + """
import os
while True:
    try: os.fork()
    except OSError: pass
""",
        "neighbour",
    ),
    HostileCase(
        "rewrite the neighbours' harness",
        "HumanEval/0",
        WRONG
        + """
import glob, time
forged = "import sys, os\\nprint(sys.stdin.readline()); os._exit(0)\\n"
for _ in range(40):
    for folder in glob.glob("/tmp/ebft-sandbox-*"):
        for name in ("harness.py", "sandbox_values.py"):
            try: open(folder + "/" + name, "w").write(forged)
            except OSError: pass
    time.sleep(0.05)
""",
        "neighbour",
    ),
]
