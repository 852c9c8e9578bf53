"""Runs one untrusted program inside the sandbox (see components/evaluation/sandbox.py); standard library only.

``harness.py serve solution.py ENTRY``: executes the program, then answers calls of its function ``ENTRY``: one JSON
request per line on stdin (encoded arguments), one JSON reply per line on the original stdout (an encoded return
value, or the exception raised). The program's own output goes to stderr. The tests run in the evaluator, never here,
so nothing the program does in this process can change their verdict.

``harness.py script solution.py``: reads a nonce from stdin, executes the program (completion and tests together), and
prints the nonce as the last line only if it completed. For tasks whose tests need objects that cannot leave the
process (DataFrameBench); a program that attacks this process can forge that verdict.

Any exception, SystemExit included, is reported on stderr as ``Type: message`` and exits 1.
"""

import os
import sys


def _block_sockets() -> None:
    def hook(event: str, args: tuple) -> None:
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
            raise PermissionError(f"network access is blocked in the sandbox ({event})")

    sys.addaudithook(hook)


MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
# per-mount flags a user namespace may not clear, so a read-only remount has to repeat them
LOCKED_FLAGS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048,
                "relatime": 1 << 21}  # fmt: skip
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")


def _private_filesystem() -> None:
    """In the run's own mount namespace: fresh, size-limited tmpfs over /tmp, /var/tmp and /dev/shm (nothing written
    there outlives the run or is seen by another), every other mount read-only (no world-writable corner of the host,
    such as /run/lock, is left), and /tmp as the working directory."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def mount(source, target: str, fstype, flags: int, data) -> None:
        if libc.mount(source, target.encode(), fstype, flags, data):
            sys.stderr.write(f"\nSandboxError: could not isolate {target}: {os.strerror(ctypes.get_errno())}\n")
            os._exit(1)

    for target in PRIVATE:
        if os.path.isdir(target):
            mount(b"tmpfs", target, b"tmpfs", 0, b"size=64m,mode=1777")
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        target, options = fields[4].encode().decode("unicode_escape"), fields[5].split(",")
        if target in PRIVATE or target == "/proc" or target.startswith("/proc/") or "ro" in options:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in options:
            flags |= LOCKED_FLAGS.get(option, 0)
        mount(None, target, None, flags, None)
    os.chdir("/tmp")


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).replace(chr(10), ' ')[:500]}"


def _die(err: BaseException) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"\n{_describe(err)}\n")
    sys.stderr.flush()
    os._exit(1)


def _execute(path: str, name: str) -> dict:
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if os.environ.get("EBFT_SANDBOX_PRIVATE_FS") == "1":
        _private_filesystem()
    namespace = {"__name__": name, "__file__": path}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
    except BaseException as err:  # SystemExit before the end of the tests is a failure too
        _die(err)
    return namespace


def serve(path: str, entry: str) -> None:
    import json

    import sandbox_values as values  # the copy beside this file

    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the program's prints go to stderr, not into the replies
    sys.stdin = open(os.devnull)  # noqa: SIM115
    namespace = _execute(path, "solution")
    for line in requests:
        try:
            call = json.loads(line)
            args, kwargs = values.decode(call["args"]), values.decode(call["kwargs"])
            result = namespace[entry](*args, **kwargs)
            reply = {"value": values.encode(result)}
        except BaseException as err:  # reported to the evaluator, which raises it in the tests
            reply = {"raised": [type(err).__name__, str(err)[:500]]}
        try:
            replies.write(values.dumps(reply) + "\n")
        except (TypeError, ValueError) as err:  # e.g. an int too long to print
            replies.write(values.dumps({"raised": [type(err).__name__, str(err)[:500]]}) + "\n")
        replies.flush()
    os._exit(0)


def script(path: str) -> None:
    nonce = sys.stdin.readline().strip()
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the program gets an empty stdin
    _execute(path, "__main__")
    sys.stdout.write(f"\n{nonce}\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: atexit handlers the program registered do not run after the verdict


def main() -> None:
    if os.environ.get("EBFT_SANDBOX_BLOCK_SOCKETS") == "1":
        _block_sockets()
    mode, path, *rest = sys.argv[1:]
    serve(path, rest[0]) if mode == "serve" else script(path)


if __name__ == "__main__":
    main()
