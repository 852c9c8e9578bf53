"""Training checkpoints that survive a kill at any moment.

A checkpoint is a folder ``step-000012`` holding accelerate's saved state (model, optimizer, registered scheduler,
the RNG states of every process; DDP and FSDP aware) and ``state.json`` (step, config fingerprint, MLflow run id,
metric history). It is written as ``.step-000012.tmp`` and renamed when complete, so a killed run leaves either the
previous checkpoints or the new one, never half of one. A checkpoint whose fingerprint differs from the run's is
never resumed from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator


@dataclass
class TrainingState:
    step: int  # optimizer steps completed
    fingerprint: str  # hash of everything that must match to resume (params, data, base model, code version)
    mlflow_run_id: str | None = None
    history: list[dict] = field(default_factory=list)  # one metrics dict per completed step


def run_fingerprint(code: str, settings: dict, base_sha: str, data_sha: str) -> str:
    """Everything a checkpoint must share with a run to be resumed from: the train stage's code (the files its DVC
    deps list, so a checkpoint is resumed exactly when DVC would not rerun the stage for a code change), the settings
    that shape training, the base model and the data."""
    relevant = {"code": code, **settings, "base_model": base_sha, "data": data_sha}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def save_checkpoint(accelerator: Accelerator, root: str | Path, state: TrainingState, keep: int = 1) -> Path:
    """Write a checkpoint (every process must call this); returns its folder."""
    root = Path(root)
    final, tmp = root / f"step-{state.step:06d}", root / f".step-{state.step:06d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "state.json").write_text(json.dumps(asdict(state), indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in complete_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def complete_checkpoints(root: str | Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    root = Path(root)
    return sorted(p for p in root.glob("step-*") if (p / "state.json").exists()) if root.is_dir() else []


def remove_partial_checkpoints(root: str | Path) -> list[Path]:
    """Delete what a killed write left behind (call from the main process, before training)."""
    leftovers = sorted(Path(root).glob(".step-*.tmp")) if Path(root).is_dir() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def remove_incompatible_checkpoints(root: str | Path, fingerprint: str) -> list[Path]:
    """Delete checkpoints made with another fingerprint: they can never be resumed by this run, and left in place they
    would sort among this run's checkpoints when old ones are pruned (call from the main process)."""
    removed = []
    for path in complete_checkpoints(root):
        if json.loads((path / "state.json").read_text())["fingerprint"] != fingerprint:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def latest_checkpoint(root: str | Path, fingerprint: str) -> tuple[Path | None, str]:
    """The newest checkpoint made by a run with this fingerprint, and a sentence saying what was found."""
    found = complete_checkpoints(root)
    if not found:
        return None, "no checkpoint: starting from the base model"
    newest = found[-1]
    state = json.loads((newest / "state.json").read_text())
    if state["fingerprint"] != fingerprint:
        return None, f"ignoring {newest}: it was made with other params, data or base model; starting fresh"
    return newest, f"resuming from {newest} (step {state['step']})"


def load_checkpoint(accelerator: Accelerator, path: str | Path) -> TrainingState:
    """Restore model, optimizer, scheduler and RNG states (every process must call this)."""
    accelerator.load_state(str(path))
    return TrainingState(**json.loads((Path(path) / "state.json").read_text()))
