"""Stage ``evaluate``: the base and trained models, side by side, on metrics independent of the training reward.

Held-out chunks: validation CE / perplexity (overall and on answers) and feature matching against the cached ground
truth. Downstream: code tasks scored by running their tests in the sandbox (pass@k), translation (BLEU, chrF).
Writes per-example scores to eval/<model>/, metrics/eval.json, metrics/comparison.md and metrics/plots/*.png, and logs
them to MLflow (into each trained model's run, and an evaluation run).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from components.data.atomic_io import atomic_directory, atomic_write_json, atomic_write_text
from components.data.chunk_store import ChunkSplit, load_split
from components.data.model_loading import load_model, load_tokenizer, weights_sha256
from components.engine.token_sampling import SamplingConfig
from components.evaluation.code_eval import evaluate_code, summarise_code
from components.evaluation.code_tasks import load_problems
from components.evaluation.feature_matching import feature_matching, summarise_feature_matching
from components.evaluation.report import (
    alignment_distribution_png,
    comparison_table,
    training_curves_png,
    write_jsonl,
)
from components.evaluation.sandbox import SandboxLimits, isolation
from components.evaluation.translation import evaluate_translation, summarise_translation
from components.evaluation.validation_ce import summarise_ce, validation_ce
from components.method.feature_cache import FeatureCache, make_cache_key
from components.method.feature_network import FeatureNetwork
from components.params.schema import Params, load_params
from components.release.tracking import RunTracker, git_facts
from flows.features import feature_network_dir
from flows.stage_cli import stage_main


def model_dirs(params: Params, model_dir: str, trained_dir: str) -> dict[str, Path]:
    dirs = {}
    for name in params.evaluated_models:
        path = Path(model_dir) if name == "base" else Path(trained_dir) / name
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"eval.models lists {name!r} but {path} holds no model: run `dvc repro train`")
        dirs[name] = path
    return dirs


def capped(chunks: ChunkSplit, limit: int | None) -> ChunkSplit:
    n = len(chunks) if limit is None else min(limit, len(chunks))
    return ChunkSplit(chunks.input_ids[:n], chunks.doc_ids[:n], chunks.qa_mask[:n])


def translation_pairs(params: Params, data_dir: str) -> list[dict]:
    path = Path(data_dir) / f"{params.eval.translation.split}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    pairs = [r for r in rows if r.get("prompt") and r.get("completion")]
    if not pairs:
        raise ValueError(f"{path} has no prompt/completion pairs to translate (eval.translation.split)")
    return pairs[: params.eval.translation.max_pairs]


def log_to_mlflow(params: Params, metrics: dict, artifacts: list[Path], train_metrics: Path) -> None:
    """Each trained model's metrics into its training run; everything into an evaluation run."""
    runs = json.loads(train_metrics.read_text()) if train_metrics.exists() else {}
    for name, values in metrics.items():
        run_id = runs.get(name, {}).get("mlflow_run_id")
        if not run_id:
            continue
        tracker = RunTracker(params.tracking.uri, params.tracking.experiment)
        tracker.start(name, {}, resume_run_id=run_id)
        tracker.log_metrics({f"eval/{k}": v for k, v in values.items() if isinstance(v, int | float)}, step=0)
        for path in artifacts:
            tracker.log_artifact(path, "evaluation")
        tracker.finish()
    tracker = RunTracker(params.tracking.uri, params.tracking.experiment)
    tracker.start("evaluate", {**git_facts(), "stage": "evaluate", "models": ",".join(metrics)})
    flat = {f"{m}/{k}": v for m, values in metrics.items() for k, v in values.items() if isinstance(v, int | float)}
    tracker.log_metrics(flat, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.finish()


class IncomparableModel(ValueError):
    """A model whose scores on this evaluation setting would mean nothing (it uses another tokenizer)."""


@dataclass
class EvalSetting:
    """What every model is scored on: held-out chunks and their cached features, code problems, translation pairs."""

    params: Params
    device: str
    tokenizer: object
    chunks: ChunkSplit
    features: FeatureNetwork
    gt_features: torch.Tensor
    problems: list[dict]
    pairs: list[dict]
    limits: SandboxLimits
    sampling: SamplingConfig


def eval_setting(params: Params, data_dir: str, model_dir: str, features_dir: str) -> EvalSetting:
    """Everything that can fail for a reason other than a model, checked before any model runs."""
    ev = params.eval
    device = "cuda" if torch.cuda.is_available() else "cpu"
    split = load_split(data_dir, ev.split)  # the whole split keys the cache; the capped head is scored
    chunks = capped(split, ev.max_chunks)
    network_dir = feature_network_dir(params, model_dir)
    features = FeatureNetwork(load_model(network_dir, params.features.dtype, device), params.features.feature_config())
    key = make_cache_key(weights_sha256(network_dir), features, {ev.split: split}, params.strided_layout(),
                         params.layout.document_masking)  # fmt: skip
    return EvalSetting(
        params=params,
        device=device,
        tokenizer=load_tokenizer(model_dir),
        chunks=chunks,
        features=features,
        gt_features=FeatureCache.open(features_dir, key).features(ev.split, slice(0, len(chunks))),
        problems=[p for task in ev.code.tasks for p in load_problems(task)[: ev.code.max_problems]],
        pairs=translation_pairs(params, data_dir) if params.evaluates_translation else [],
        limits=SandboxLimits(
            wall_seconds=ev.code.timeout_s, cpu_seconds=int(ev.code.timeout_s) + 1, memory_mb=ev.code.memory_mb
        ),
        sampling=SamplingConfig(n_samples=ev.feature_samples, temperature=ev.temperature),
    )


def evaluate_model(setting: EvalSetting, name: str, path: Path, out: Path) -> tuple[dict, list[float]]:
    """Score one model; per-example results go to ``out/<name>/``. Returns its summary and per-block alignment."""
    params, ev, layout = setting.params, setting.params.eval, setting.params.strided_layout()
    start = time.perf_counter()
    model = load_model(path, "float32", setting.device)
    ce = validation_ce(model, setting.chunks, layout, document_masking=params.layout.document_masking)
    fm, block_alignment = feature_matching(
        model, setting.features, setting.chunks, setting.gt_features, layout, setting.sampling,
        document_masking=params.layout.document_masking, seed=ev.seed,
    )  # fmt: skip
    write_jsonl(out / name / "validation_ce.jsonl", ce)
    write_jsonl(out / name / "feature_matching.jsonl", fm)
    (out / name / "block_alignment.json").write_text(json.dumps(block_alignment))
    values = {**summarise_ce(ce), **summarise_feature_matching(fm)}
    if setting.problems:
        code = evaluate_code(
            model, setting.tokenizer, setting.problems, ev.code.decoding, ev.code.ks, setting.limits, ev.code.workers
        )
        write_jsonl(out / name / "code.jsonl", code)
        values.update(summarise_code(code, ev.code.ks))
    if setting.pairs:
        translations = evaluate_translation(
            model, setting.tokenizer, setting.pairs, params.data.prompt_template, ev.translation.decoding
        )
        write_jsonl(out / name / "translation.jsonl", translations)
        values.update(summarise_translation(translations))
    values["eval_seconds"] = round(time.perf_counter() - start, 1)
    print(f"[{name}] " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()))
    return values, block_alignment


def evaluate_other_model(
    path: Path,
    out: Path,
    name: str = "champion",
    params_path: str = "params.yaml",
    data_dir: str = "data",
    model_dir: str = "models/base",
    features_dir: str = "features",
) -> Path:
    """Score a model that is not one of this run's (the registry's champion) exactly as the stage scores its own, on
    the current held-out data; returns the folder of its per-example results (what the promotion gate reads)."""
    setting = eval_setting(load_params(params_path), data_dir, model_dir, features_dir)
    if load_tokenizer(path).get_vocab() != setting.tokenizer.get_vocab():
        raise IncomparableModel(
            f"uses another tokenizer than {model_dir}: its scores on these chunks would mean nothing"
        )
    evaluate_model(setting, name, path, out)
    return out / name


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
    ev = params.eval
    start = time.perf_counter()
    models = model_dirs(params, model_dir, trained_dir)
    setting = eval_setting(params, data_dir, model_dir, features_dir)
    problems = setting.problems
    print(f"evaluate: {list(models)} on {len(setting.chunks)} {ev.split} chunks, {len(problems)} code problems, "
          f"{len(setting.pairs)} translation pairs; sandbox: {isolation() if problems else 'unused'}")  # fmt: skip

    metrics: dict[str, dict] = {}
    block_alignment: dict[str, list[float]] = {}
    with atomic_directory(out_dir) as out:
        for name, path in models.items():
            metrics[name], block_alignment[name] = evaluate_model(setting, name, path, out)

    chunks = setting.chunks
    record = {
        "models": metrics,
        "split": ev.split,
        "chunks": len(chunks),
        "sandbox": isolation() if problems else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(metrics_path, record)
    atomic_write_text(
        table_path, f"# Evaluation ({ev.split} split, {len(chunks)} chunks)\n\n" + comparison_table(metrics)
    )
    Path(plots_dir).mkdir(parents=True, exist_ok=True)
    pictures = [
        training_curves_png(Path(curves_dir), Path(plots_dir) / "training_curves.png"),
        alignment_distribution_png(block_alignment, Path(plots_dir) / "alignment_distribution.png"),
    ]
    artifacts = [Path(table_path), Path(metrics_path), *(p for p in pictures if p is not None)]
    log_to_mlflow(params, metrics, artifacts, Path(train_metrics))
    print(f"evaluation done in {record['seconds']} s; table in {table_path}")
    return record


def main(argv: list[str] | None = None) -> None:
    stage_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
