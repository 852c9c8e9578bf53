"""Scoring one model on the evaluation setting: held-out CE and feature matching, code tasks, translation.

``EvalSetting.load`` gathers (and checks, before any model runs) what every model is scored on: the held-out chunks
and their cached ground-truth features, the frozen feature network, code problems, translation pairs. ``score_model``
scores one model and writes its per-example results, which the comparison table and the promotion gate read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from components.data.chunk_store import ChunkSplit, load_split
from components.data.model_loading import load_model, load_tokenizer
from components.engine.config import SamplingConfig
from components.evaluation.code_eval import evaluate_code, summarise_code
from components.evaluation.code_tasks import CodeProblem, load_problems
from components.evaluation.config import EvalPlan
from components.evaluation.feature_matching import feature_matching, summarise_feature_matching
from components.evaluation.report import write_jsonl
from components.evaluation.sandbox import SandboxLimits, require_isolation
from components.evaluation.translation import evaluate_translation, summarise_translation
from components.evaluation.validation_ce import summarise_ce, validation_ce
from components.method.feature_cache import FeatureCache, load_feature_network, make_cache_key
from components.method.feature_network import FeatureNetwork


class IncomparableModel(ValueError):
    """A model whose scores on this evaluation setting would mean nothing (it uses another tokenizer)."""


@dataclass
class EvalSetting:
    """What every model is scored on: held-out chunks and their cached features, code problems, translation pairs."""

    plan: EvalPlan
    device: str
    base_dir: Path
    tokenizer: object
    chunks: ChunkSplit
    features: FeatureNetwork
    gt_features: torch.Tensor
    problems: list[CodeProblem]
    pairs: list[dict]
    limits: SandboxLimits
    sampling: SamplingConfig

    @classmethod
    def load(cls, plan: EvalPlan, data_dir: str | Path, model_dir: str | Path, features_dir: str | Path) -> EvalSetting:
        """Everything that can fail for a reason other than a model, checked before any model runs."""
        ev = plan.eval
        if ev.code.tasks:
            require_isolation(SandboxLimits(require_namespaces=ev.code.require_namespaces))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        split = load_split(data_dir, ev.split)  # the whole split keys the cache; the capped head is scored
        chunks = capped(split, ev.max_chunks)
        features, sha = load_feature_network(plan.features, model_dir, device)
        key = make_cache_key(sha, features, {ev.split: split}, plan.layout, plan.document_masking)
        return cls(
            plan=plan,
            device=device,
            base_dir=Path(model_dir),
            tokenizer=load_tokenizer(model_dir),
            chunks=chunks,
            features=features,
            gt_features=FeatureCache.open(features_dir, key).features(ev.split, slice(0, len(chunks))),
            problems=[p for task in ev.code.tasks for p in load_problems(task)[: ev.code.max_problems]],
            pairs=translation_pairs(Path(data_dir) / f"{ev.translation.split}.jsonl", ev.translation.max_pairs)
            if plan.translation
            else [],
            limits=SandboxLimits.per_run(ev.code.timeout_s, ev.code.memory_mb, ev.code.require_namespaces),
            sampling=SamplingConfig(n_samples=ev.feature_samples, temperature=ev.temperature),
        )


def capped(chunks: ChunkSplit, limit: int | None) -> ChunkSplit:
    n = len(chunks) if limit is None else min(limit, len(chunks))
    return ChunkSplit(chunks.input_ids[:n], chunks.doc_ids[:n], chunks.qa_mask[:n])


def translation_pairs(path: Path, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    pairs = [r for r in rows if r.get("prompt") and r.get("completion")]
    if not pairs:
        raise ValueError(f"{path} has no prompt/completion pairs to translate (eval.translation.split)")
    return pairs[:limit]


def score_model(setting: EvalSetting, name: str, path: Path, out: Path) -> tuple[dict, list[float]]:
    """Score one model; per-example results go to ``out/<name>/``. Returns its summary and per-block alignment."""
    plan, ev = setting.plan, setting.plan.eval
    start = time.perf_counter()
    model = load_model(path, plan.eval.dtype, setting.device)
    ce = validation_ce(model, setting.chunks, plan.layout, document_masking=plan.document_masking)
    fm, block_alignment = feature_matching(
        model, setting.features, setting.chunks, setting.gt_features, plan.layout, setting.sampling,
        document_masking=plan.document_masking, seed=ev.seed,
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
            model, setting.tokenizer, setting.pairs, plan.prompt_template, ev.translation.decoding, plan.chat_template
        )
        write_jsonl(out / name / "translation.jsonl", translations)
        values.update(summarise_translation(translations))
    values["eval_seconds"] = round(time.perf_counter() - start, 1)
    print(f"[{name}] " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()))
    return values, block_alignment


def score_other_model(setting: EvalSetting, path: Path, out: Path, name: str) -> Path:
    """Score a model that is not one of this run's (the registry's champion) exactly as the run's own models are, on
    the same held-out data; returns the folder of its per-example results (what the promotion gate reads)."""
    if load_tokenizer(path).get_vocab() != setting.tokenizer.get_vocab():
        raise IncomparableModel(
            f"uses another tokenizer than {setting.base_dir}: its scores on these chunks would mean nothing"
        )
    score_model(setting, name, path, out)
    return out / name
