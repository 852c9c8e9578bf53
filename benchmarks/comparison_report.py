"""A results page for a finished run of several methods: per-example metrics with 95% bootstrap CIs, the paired
difference of each trained model from the base model, and learning curves.

    python -m benchmarks.comparison_report --project . --out docs/results/translation-small.md [--title TEXT]

It reads what the evaluate and train stages wrote (``eval/<model>/*.jsonl``, ``metrics/train_curves/*.csv``,
``metrics/train.json``) and writes the page plus ``<out stem>_curves.png`` beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

# (file, field, label, higher is better)
METRICS = [
    ("translation.jsonl", "chrf", "chrF (test pairs)", True),
    ("translation.jsonl", "bleu", "sentence BLEU (test pairs)", True),
    ("validation_ce.jsonl", "answer_ce", "validation CE on answers", False),
    ("validation_ce.jsonl", "ce", "validation CE", False),
    ("feature_matching.jsonl", "alignment", "feature alignment", True),
    ("feature_matching.jsonl", "cfm_loss", "conditional feature-matching loss", False),
]
RESAMPLES = 10_000


def per_example(folder: Path, file: str, field: str) -> np.ndarray | None:
    path = folder / file
    if not path.exists():
        return None
    return np.array([json.loads(line)[field] for line in path.read_text().splitlines() if line.strip()], dtype=float)


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile interval of the mean (examples resampled with replacement)."""
    means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(project: Path, models: list[str], seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = ["| metric | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    diffs = ["| metric | " + " | ".join(f"{m} − base" for m in models[1:]) + " |", "|---|" + "---|" * (len(models) - 1)]
    for file, field, label, higher in METRICS:
        values = {m: per_example(project / "eval" / m, file, field) for m in models}
        if any(v is None or not len(v) for v in values.values()):
            continue
        cells = []
        for m in models:
            lo, hi = bootstrap_ci(values[m], rng)
            cells.append(f"{values[m].mean():.4f} [{lo:.4f}, {hi:.4f}]")
        arrow = "↑" if higher else "↓"
        lines.append(f"| {label} {arrow} (n={len(values['base'])}) | " + " | ".join(cells) + " |")
        row = []
        for m in models[1:]:
            d = values[m] - values["base"]  # paired: the same examples
            lo, hi = bootstrap_ci(d, rng)
            significant = lo > 0 or hi < 0
            verdict = "no change" if not significant else ("better" if (lo > 0) == higher else "worse")
            row.append(f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}] {verdict}")
        diffs.append(f"| {label} {arrow} | " + " | ".join(row) + " |")
    return [*lines, "", "Paired difference from the base model (same examples; 95% bootstrap CI):", "", *diffs]


def plot_curves(project: Path, methods: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for method in methods:
        with open(project / "metrics/train_curves" / f"{method}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        steps = [int(r["step"]) for r in rows]
        axes[0].plot(steps, [float(r["ce"]) for r in rows], label=method)
        if rows and rows[0].get("reward"):
            axes[1].plot(steps, [float(r["reward"]) for r in rows], label=f"{method} reward")
    axes[0].set(title="training CE on the step's chunks", xlabel="step")
    axes[1].set(title="reward (EBFT: feature reward; RLVR: chrF/100)", xlabel="step")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="Comparison")
    parser.add_argument("--notes", type=Path, help="a Markdown file appended after the tables (setup, reading)")
    args = parser.parse_args()
    trained = json.loads((args.project / "metrics/train.json").read_text())
    methods = [m for m in ("ebft", "sft", "rlvr") if m in trained]
    models = ["base", *methods]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    curves = args.out.with_name(args.out.stem + "_curves.png")
    plot_curves(args.project, methods, curves)
    page = [f"# {args.title}", "", "Mean per example, with its 95% bootstrap CI:", "", *table(args.project, models), ""]
    page += ["| method | steps | training seconds |", "|---|---|---|"]
    page += [f"| {m} | {trained[m]['steps']} | {trained[m].get('seconds', float('nan')):.0f} |" for m in methods]
    page += ["", f"![learning curves]({curves.name})", ""]
    if args.notes:
        page += [args.notes.read_text()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(page) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
