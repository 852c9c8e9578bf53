"""What a finished training run leaves for people: its per-step history, a summary, curves and a model card."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

CURVE_COLUMNS = (
    "step",
    "loss",
    "ce",
    "kl",
    "reward",
    "alignment",
    "diversity",
    "pg_loss",
    "grad_norm",
    "lr",
    "reward_std",  # spread of rewards among a prompt's (chunk's) samples
    "answer_tokens",  # RLVR: mean sampled answer length
    "time/step_s",  # wall clock: last, so comparisons of runs can drop it
)
SUMMARY_KEYS = ("loss", "ce", "kl", "reward", "alignment", "diversity", "grad_norm", "time/step_s", "peak_memory_mb")


@dataclass
class TrainingResult:
    method: str
    steps: int
    history: list[dict]  # one metrics dict per completed step
    run_id: str | None
    seconds: float


def summary(result: TrainingResult, steps_per_epoch: float) -> dict:
    """First/last step figures and per-epoch means: with a small training set, steps differ mostly by which chunks
    they drew, while epoch means compare the same chunks before and after learning."""
    first, last = result.history[0], result.history[-1]
    epochs: dict[int, list[dict]] = {}
    for row in result.history:
        epochs.setdefault(int((row["step"] - 1) // steps_per_epoch), []).append(row)
    by_epoch = {
        str(epoch + 1): {
            k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("reward", "ce", "kl") if k in rows[0]
        }
        for epoch, rows in epochs.items()
        if len(rows) >= steps_per_epoch  # complete epochs only
    }
    return {
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        "mlflow_run_id": result.run_id,
        "first": {k: first[k] for k in SUMMARY_KEYS if k in first},
        "final": {k: last[k] for k in SUMMARY_KEYS if k in last},
        "epoch_means": by_epoch,
    }


def write_curves(folder: Path, results: dict[str, TrainingResult]) -> None:
    """One CSV per method (``dvc plots`` and the evaluation plots read them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for method, result in results.items():
        with open(folder / f"{method}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in result.history:
                writer.writerow({k: row.get(k, "") for k in CURVE_COLUMNS})


def model_card(method: str, base: str, source: str, seq_len: int, facts: dict) -> str:
    return (
        f"# {method.upper()} fine-tune of {base}\n\n"
        f"Trained by the EBFT pipeline (`{method}`, {facts['steps']} steps) on `{source}` chunks of "
        f"{seq_len} tokens. MLflow run `{facts['mlflow_run_id']}`.\n"
    )
