import math

import pytest

from components.data.chunk_store import load_split
from components.data.tiny_models import tiny_causal_lm
from components.engine.layout import StridedLayout
from components.evaluation import code_eval
from components.evaluation.code_tasks import load_problems
from components.evaluation.decoding import DecodingConfig, generate_completions, truncate_at_stop
from components.evaluation.pass_at_k import pass_at_k
from components.evaluation.sandbox import SandboxLimits
from components.evaluation.translation import summarise_translation
from components.evaluation.validation_ce import summarise_ce, validation_ce


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(5, 4, 2) == 1.0 and pass_at_k(5, 0, 3) == 0.0
    # the estimator is the expected max-of-k over k drawn without replacement, not the max over all n samples
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="needs at least 3 samples"):
        pass_at_k(2, 1, 3)


def test_greedy_decoding_cuts_at_stops_and_is_deterministic(tiny_project):
    from components.data.model_loading import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_project / "models/base"), load_tokenizer(tiny_project / "models/base")
    prompts = ["def add(a, b):\n", "x = [1, 2,", "import os\n"]
    config = DecodingConfig(max_new_tokens=12, batch_size=2)
    first = generate_completions(model, tokenizer, prompts, [("\n",)] * 3, config)
    again = generate_completions(model, tokenizer, prompts, [("\n",)] * 3, config)
    assert first == again and all(len(c) == 1 and "\n" not in c[0] for c in first)
    sampled = generate_completions(model, tokenizer, prompts, [()] * 3, DecodingConfig(samples=3, temperature=1.0))
    assert all(len(c) == 3 for c in sampled)
    assert truncate_at_stop("body\ndef next():", ("\ndef ", "\nclass ")) == "body"
    with pytest.raises(ValueError, match="would all be the same greedy completion"):
        DecodingConfig(samples=2, temperature=0.0)


def test_code_scoring_counts_reference_solutions_as_passing(monkeypatch):
    problems = load_problems("humaneval")[:4]

    def fake_generate(model, tokenizer, prompts, stops, config, desc):
        wrong = "    return None\n"
        return [[p.reference, wrong] for p in problems]

    monkeypatch.setattr(code_eval, "generate_completions", fake_generate)
    records = code_eval.evaluate_code(
        None, None, problems, DecodingConfig(samples=2, temperature=1.0), [1, 2], SandboxLimits(wall_seconds=5)
    )
    assert [r["passed"] for r in records] == [1, 1, 1, 1]
    assert all(r["pass@1"] == pytest.approx(0.5) and r["pass@2"] == 1.0 for r in records)
    assert records[0]["samples"][1]["status"] == "fail"
    assert code_eval.summarise_code(records, [1, 2]) == {
        "humaneval_pass@1": 0.5,
        "humaneval_pass@2": 1.0,
        "humaneval_problems": 4,
    }


def test_validation_ce_matches_the_model_loss(tiny_project):
    model = tiny_causal_lm(vocab_size=512, seed=3)
    chunks = load_split(tiny_project / "data", "val")
    layout = StridedLayout(seq_len=40, context=4, stride=4, block_len=4)
    records = validation_ce(model, chunks, layout, document_masking=False, batch_size=3)
    ids = chunks.input_ids.long()
    assert len(records) == len(chunks)
    assert records[0]["ce"] == pytest.approx(model(ids[:1], labels=ids[:1]).loss.item(), abs=1e-5)
    summary = summarise_ce(records)
    assert summary["val_perplexity"] == pytest.approx(math.exp(summary["val_ce"]))


def test_translation_scores():
    perfect = [{"hypothesis": "The house is old.", "reference": "The house is old."}] * 3
    assert summarise_translation(perfect)["translation_bleu"] == pytest.approx(100.0)
    wrong = [{"hypothesis": "Cats sleep.", "reference": "The house is old."}] * 3
    assert summarise_translation(wrong)["translation_chrf"] < 30
