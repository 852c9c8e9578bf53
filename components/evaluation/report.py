"""What evaluation shows people: the base/SFT/EBFT comparison table and the pictures.

- ``comparison_table``: markdown, one row per metric, one column per model, with the direction that is better.
- ``training_curves_png``: reward and cross-entropy per training step (from the train stage's curves).
- ``alignment_distribution_png``: histogram of per-block alignment of each model's samples with the ground truth,
  before training (base) and after (trained models).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LOWER_IS_BETTER = ("ce", "perplexity", "cfm_loss")
LABELS = {
    "val_ce": "validation CE (nats/token)",
    "val_perplexity": "validation perplexity",
    "val_answer_ce": "validation CE on answers",
    "val_answer_perplexity": "validation perplexity on answers",
    "fm_alignment": "feature alignment (mean cos over k samples)",
    "fm_alignment_best_of_k": "feature alignment, best of k",
    "fm_diversity": "sample diversity (mean cos between samples)",
    "fm_cfm_loss": "conditional feature-matching loss",
    "fm_token_match": "token match with ground truth",
    "translation_bleu": "BLEU",
    "translation_chrf": "chrF",
}


TASK_NAMES = {"humaneval": "HumanEval", "mbpp": "MBPP (typed)", "dataframebench": "DataFrameBench"}


def label(metric: str) -> str:
    task, _, rest = metric.partition("_")
    if task in TASK_NAMES and rest.startswith("pass@"):
        return f"{TASK_NAMES[task]} {rest} (unbiased)"
    if task in TASK_NAMES and rest == "problems":
        return f"{TASK_NAMES[task]} problems evaluated"
    return LABELS.get(metric, metric)


def better(metric: str) -> str:
    if metric.endswith("_problems") or metric.endswith("_pairs") or "diversity" in metric:
        return ""
    return "lower" if any(metric.endswith(s) for s in LOWER_IS_BETTER) else "higher"


def comparison_rows(metrics: dict[str, dict[str, float]]) -> list[dict]:
    """One row per metric (its label, its key as params name it, e.g. registry.gate.primary, the direction that is
    better, then one value per model; None where a model lacks it), in the order the comparison table shows them."""
    names = sorted(
        {k for m in metrics.values() for k in m if not k.endswith("_seconds")},
        key=lambda k: (not k.startswith("val"), not k.startswith("fm"), k),
    )
    return [{"metric": label(name), "key": name, "better": better(name), **{model: values.get(name) for model, values in
             metrics.items()}} for name in names]  # fmt: skip


def comparison_table(metrics: dict[str, dict[str, float]]) -> str:
    models = list(metrics)
    lines = [
        "| metric | better | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for row in comparison_rows(metrics):
        cells = [
            "" if row[m] is None else (f"{row[m]:.4f}" if isinstance(row[m], float) else str(row[m])) for m in models
        ]
        lines.append(f"| {row['metric']} | {row['better']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _read_curve(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r[k] else float("nan") for r in rows] for k in (rows[0] if rows else {})}


def training_curves_png(curves_dir: Path, out: Path) -> Path | None:
    files = sorted(curves_dir.glob("*.csv")) if curves_dir.is_dir() else []
    if not files:
        return None
    fig, (reward_ax, ce_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for path in files:
        curve = _read_curve(path)
        if not curve:
            continue
        if "reward" in curve and any(v == v for v in curve["reward"]):
            reward_ax.plot(curve["step"], curve["reward"], marker="o", label=path.stem)
        ce_ax.plot(curve["step"], curve["ce"], marker="o", label=path.stem)
    reward_ax.set(title="training reward (EBFT)", xlabel="step", ylabel="reward")
    ce_ax.set(title="training cross-entropy", xlabel="step", ylabel="nats/token")
    for ax in (reward_ax, ce_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def alignment_distribution_png(block_alignment: dict[str, list[float]], out: Path) -> Path | None:
    if not any(block_alignment.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    values = [v for vs in block_alignment.values() for v in vs]
    bins = 30 if len(values) > 60 else 12
    lo, hi = min(values), max(values)
    for model, vals in block_alignment.items():
        if vals:
            mean = sum(vals) / len(vals)
            ax.hist(vals, bins=bins, range=(lo, hi), histtype="step", linewidth=2, label=f"{model} (mean {mean:.3f})")
    ax.set(
        title="alignment of samples with the ground truth, per block",
        xlabel="mean cos(φ sample, φ ground truth)",
        ylabel="blocks",
    )
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
