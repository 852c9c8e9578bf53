"""The promotion gate on synthetic per-example scores: paired bootstrap intervals, promote / keep / guard regression /
first model / not comparable, and the metric names params.yaml accepts."""

import json

import numpy as np
import pytest

from components.params.loading import ParamsError, validate_params
from components.release.config import GateConfig
from components.release.promotion.bootstrap import paired_bootstrap
from components.release.promotion.gate import decide
from components.release.promotion.metrics import gate_metric
from components.release.promotion.scores import load_scores
from tests.helpers.gate_files import N, write_eval


@pytest.fixture
def champion(tmp_path):
    rng = np.random.default_rng(0)
    return write_eval(tmp_path / "champion", 0.5 + 0.1 * rng.standard_normal(N), 2.0 + 0.2 * rng.standard_normal(N))


def scores(folder, name):
    return load_scores(folder, gate_metric(name))


def test_paired_bootstrap_sees_a_small_consistent_gain_and_nothing_in_noise():
    rng = np.random.default_rng(1)
    base = rng.standard_normal(200)  # large per-example spread, as with problems of varied difficulty
    better = paired_bootstrap(base + 0.05 + 0.01 * rng.standard_normal(200), base)
    assert better.low > 0 and better.delta == pytest.approx(0.05, abs=0.01)
    same = paired_bootstrap(base + 0.01 * rng.standard_normal(200), base)
    assert same.low < 0 < same.high
    lower_better = paired_bootstrap(base - 0.05, base, higher_is_better=False)
    assert lower_better.delta == pytest.approx(0.05) and lower_better.low > 0
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_bootstrap(base[:3], base[:4])


def test_the_weighted_mean_matches_the_stage_aggregate(champion):
    ce = scores(champion, "val_ce")
    rows = [json.loads(line) for line in (champion / "validation_ce.jsonl").read_text().splitlines()]
    expected = sum(r["ce"] * r["tokens"] for r in rows) / sum(r["tokens"] for r in rows)
    assert ce.mean() == pytest.approx(expected)


def test_the_first_model_is_promoted(tmp_path, champion):
    decision = decide(champion, None, GateConfig())
    assert decision.promote and "first model" in decision.reason


def test_a_significant_improvement_with_guards_holding_is_promoted(tmp_path, champion):
    old_a, old_ce = scores(champion, "fm_alignment"), scores(champion, "val_ce")
    a = np.array(list(old_a.values.values())) + 0.03
    ce = np.array(list(old_ce.values.values())) - 0.01
    decision = decide(write_eval(tmp_path / "new", a, ce), champion, GateConfig())
    assert decision.promote, decision.reason
    tags = decision.as_tags()
    assert tags["gate.decision"] == "promote" and float(tags["gate.primary.low"]) > 0
    assert tags["gate.primary.examples"] == str(N) and "gate.guard.val_ce.delta" in tags


def test_noise_is_not_an_improvement(tmp_path, champion):
    rng = np.random.default_rng(5)
    a = np.array(list(scores(champion, "fm_alignment").values.values())) + 0.05 * rng.standard_normal(N)
    ce = np.array(list(scores(champion, "val_ce").values.values()))
    decision = decide(write_eval(tmp_path / "new", a, ce), champion, GateConfig())
    assert not decision.promote and "not significant" in decision.reason
    assert decision.as_tags()["gate.decision"] == "keep"


def test_a_guard_regression_blocks_a_better_primary(tmp_path, champion):
    a = np.array(list(scores(champion, "fm_alignment").values.values())) + 0.05
    ce = np.array(list(scores(champion, "val_ce").values.values())) + 0.3  # much worse language model
    decision = decide(write_eval(tmp_path / "new", a, ce), champion, GateConfig(guards={"val_ce": 0.05}))
    assert not decision.promote and "guard regressed: val_ce" in decision.reason
    assert decision.primary.low > 0 and not decision.guards["val_ce"][1]
    # a tolerance that allows it lets it through
    assert decide(tmp_path / "new", champion, GateConfig(guards={"val_ce": 0.5})).promote


def test_code_pass_at_k_is_gated_per_problem(tmp_path):
    old = write_eval(tmp_path / "old", [0.5] * N, [2.0] * N, passed=[i % 4 == 0 for i in range(N)])
    new = write_eval(tmp_path / "new", [0.5] * N, [2.0] * N, passed=[i % 4 == 0 or i % 4 == 1 for i in range(N)])
    cfg = GateConfig(primary="humaneval_pass@1", guards={})
    decision = decide(new, old, cfg)
    assert decision.promote and decision.primary.delta == pytest.approx(0.25)


def test_too_few_shared_examples_or_a_missing_metric_is_not_comparable(tmp_path, champion):
    few = write_eval(tmp_path / "few", [0.9] * 3, [1.0] * 3)
    decision = decide(few, champion, GateConfig())
    assert not decision.promote and "only 3 examples" in decision.reason
    decision = decide(few, champion, GateConfig(primary="humaneval_pass@1"))
    assert not decision.promote and "code.jsonl is missing" in decision.reason


def test_unknown_gate_metrics_are_refused_with_the_allowed_names():
    with pytest.raises(ValueError, match=r"allowed: .*fm_alignment.*pass@"):
        gate_metric("accuracy")
    with pytest.raises(ParamsError, match=r"registry.gate.primary"):
        validate_params({"registry": {"gate": {"primary": "accuracy"}}})
    with pytest.raises(ParamsError, match=r"needs eval.code.tasks to include 'mbpp'"):
        validate_params({"registry": {"gate": {"primary": "mbpp_pass@1"}}})
    with pytest.raises(ParamsError, match=r"registry.method='sft' must be trained"):
        validate_params({"train": {"methods": ["ebft"]}, "eval": {"models": ["base", "ebft"]},
                         "registry": {"method": "sft"}})  # fmt: skip
