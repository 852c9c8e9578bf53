"""Running DVC on the project the way the pipeline does: stages one at a time, remote sync, output streamed live.

Every command runs this environment's ``dvc`` (and so its ``python`` for the stage commands), whatever PATH says.
"""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """Stage commands (`python -m flows.<stage>`) must find this environment's python and dvc."""
    return os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def stream(cmd: list[str], on_output: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run ``cmd``, echoing its output live (progress bars included) and handing each piece to ``on_output``; returns
    (exit code, output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=tool_env())
    seen = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may straddle two reads
    for raw in iter(lambda: proc.stdout.read1(4096), b""):
        text = decoder.decode(raw)
        sys.stdout.write(text)
        sys.stdout.flush()
        seen.append(raw)
        if on_output is not None:
            on_output(text)
    return proc.wait(), b"".join(seen).decode(errors="replace")


class StageFailed(RuntimeError):
    """A stage command failed; the message ends with the last lines of its output (where its error is)."""


def output_tail(output: str, lines: int = 25, chars: int = 3000) -> str:
    """The last ``lines`` lines of a command's output as a terminal would show them (a progress bar redrawn with
    carriage returns counts once, as its final state), at most ``chars`` characters."""
    shown = [line.rsplit("\r", 1)[-1].rstrip() for line in output.replace("\r\n", "\n").split("\n")]
    tail = "\n".join([line for line in shown if line][-lines:])
    return tail[-chars:]


def repro_stage(stage: str, on_output: Callable[[str], None] | None = None) -> bool:
    """``dvc repro --single-item stage``; True if it ran, False if DVC found it unchanged."""
    code, out = stream([str(BIN / "dvc"), "repro", "--single-item", stage], on_output)
    if code:
        raise StageFailed(f"stage {stage!r} failed (dvc repro exit {code}); the end of its output:\n{output_tail(out)}")
    return f"Running stage '{stage}'" in out


def sync(direction: str) -> str:
    """``dvc pull`` / ``dvc push`` when a DVC remote is configured; raises ConnectionError when the remote fails."""
    remotes = subprocess.run([str(BIN / "dvc"), "remote", "list"], capture_output=True, text=True, env=tool_env())
    if not remotes.stdout.strip():
        return f"dvc {direction}: no DVC remote configured (local cache only)"
    cmd = [str(BIN / "dvc"), direction] + (["--allow-missing"] if direction == "pull" else [])
    code, out = stream(cmd)
    if code:
        raise ConnectionError(f"`{' '.join(cmd[-2:])}` failed ({code}): {out[-500:]}")
    return f"dvc {direction}: done"
