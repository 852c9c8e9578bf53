"""Runs one untrusted program inside the sandbox (see components/evaluation/sandbox.py); standard library only.

Reads a nonce from stdin, executes the program, and prints the nonce as the last line only if the program and its
tests completed. Any exception, SystemExit included, is reported on stderr as ``Type: message`` and exits 1.
"""

import os
import sys


def _block_sockets() -> None:
    def hook(event: str, args: tuple) -> None:
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
            raise PermissionError(f"network access is blocked in the sandbox ({event})")

    sys.addaudithook(hook)


def _private_tmp() -> None:
    """Fresh, size-limited tmpfs over /tmp, /var/tmp and /dev/shm in the run's own mount namespace: nothing written
    there outlives the run or is seen by another. The program's folder stays reachable as the working directory."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for target in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(target) and libc.mount(b"tmpfs", target.encode(), b"tmpfs", 0, b"size=64m,mode=1777"):
            sys.stderr.write(f"\nSandboxError: could not make {target} private: {os.strerror(ctypes.get_errno())}\n")
            os._exit(1)


def main() -> None:
    nonce = sys.stdin.readline().strip()
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the program gets an empty stdin
    if os.environ.get("EBFT_SANDBOX_BLOCK_SOCKETS") == "1":
        _block_sockets()
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if os.environ.get("EBFT_SANDBOX_PRIVATE_TMP") == "1":
        _private_tmp()
    namespace = {"__name__": "__main__", "__file__": path}
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
    except BaseException as err:  # SystemExit before the end of the tests is a failure too
        sys.stdout.flush()
        message = str(err).replace("\n", " ")[:500]
        sys.stderr.write(f"\n{type(err).__name__}: {message}\n")
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.write(f"\n{nonce}\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: atexit handlers the program registered do not run after the verdict


if __name__ == "__main__":
    main()
