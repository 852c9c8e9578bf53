"""Stage ``evaluate``: the base and trained models, side by side, on metrics independent of the training reward.

Held-out chunks: validation CE / perplexity (overall and on answers) and feature matching against the cached ground
truth. Downstream: code tasks scored by running their tests in the sandbox (pass@k), translation (BLEU, chrF).
Writes per-example scores to eval/<model>/, metrics/eval.json, metrics/comparison.md and metrics/plots/*.png, and logs
them to MLflow (into each trained model's run, and an evaluation run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from components.data.atomic_io import atomic_directory, atomic_write_json, atomic_write_text
from components.evaluation.example_tables import example_tables
from components.evaluation.report import alignment_distribution_png, comparison_table, training_curves_png
from components.evaluation.sandbox import isolation
from components.evaluation.suite import EvalSetting, score_model, score_other_model
from components.params.loading import load_params
from components.params.schema import Params
from components.release.tracking import log_evaluation
from flows.stage_cli import stage_main


def model_dirs(params: Params, model_dir: str, trained_dir: str) -> dict[str, Path]:
    dirs = {name: Path(model_dir) if name == "base" else Path(trained_dir) / name for name in params.evaluated_models}
    for name, path in dirs.items():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"eval.models lists {name!r} but {path} holds no model: run `dvc repro train`")
    return dirs


def run(
    params_path: str = "params.yaml",
    data_dir: str = "data",
    model_dir: str = "models/base",
    trained_dir: str = "models/trained",
    features_dir: str = "features",
    out_dir: str = "eval",
    metrics_path: str = "metrics/eval.json",
    table_path: str = "metrics/comparison.md",
    plots_dir: str = "metrics/plots",
    curves_dir: str = "metrics/train_curves",
    train_metrics: str = "metrics/train.json",
) -> dict:
    params = load_params(params_path)
    start = time.perf_counter()
    models = model_dirs(params, model_dir, trained_dir)
    setting = EvalSetting.load(params.eval_plan(), data_dir, model_dir, features_dir)
    split, chunks, sandbox = params.eval.split, len(setting.chunks), isolation() if setting.problems else None
    print(f"evaluate: {list(models)} on {chunks} {split} chunks, {len(setting.problems)} code problems, "
          f"{len(setting.pairs)} translation pairs; sandbox: {sandbox or 'unused'}")  # fmt: skip
    with atomic_directory(out_dir) as out:
        scored = {name: score_model(setting, name, path, out) for name, path in models.items()}
    metrics = {name: values for name, (values, _) in scored.items()}
    alignment = {name: blocks for name, (_, blocks) in scored.items()}
    seconds = round(time.perf_counter() - start, 1)
    record = {"models": metrics, "split": split, "chunks": chunks, "sandbox": sandbox, "seconds": seconds}
    atomic_write_json(metrics_path, record)
    atomic_write_text(table_path, f"# Evaluation ({split} split, {chunks} chunks)\n\n" + comparison_table(metrics))
    Path(plots_dir).mkdir(parents=True, exist_ok=True)
    pictures = [
        training_curves_png(Path(curves_dir), Path(plots_dir) / "training_curves.png"),
        alignment_distribution_png(alignment, Path(plots_dir) / "alignment_distribution.png"),
    ]
    artifacts = [Path(table_path), Path(metrics_path), *(p for p in pictures if p is not None)]
    runs = json.loads(Path(train_metrics).read_text()) if Path(train_metrics).exists() else {}
    tables = {name: example_tables(Path(out_dir) / name) for name in models}
    log_evaluation(params.tracking.uri, params.tracking.experiment, metrics, artifacts, runs, tables)
    print(f"evaluation done in {record['seconds']} s; table in {table_path}")
    return record


def evaluate_other_model(path: Path, out: Path, name: str = "champion", params_path: str = "params.yaml") -> Path:
    """Score a model that is not one of this run's (the registry's champion) exactly as this stage scores its own, on
    the current held-out data; returns the folder of its per-example results."""
    setting = EvalSetting.load(load_params(params_path).eval_plan(), "data", "models/base", "features")
    return score_other_model(setting, path, out, name)


def main(argv: list[str] | None = None) -> None:
    stage_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
