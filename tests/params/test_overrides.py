"""Overrides for one run are validated, then written into params.yaml (comments kept), the file the stages read."""

import shutil

import pytest

from components.params.loading import ParamsError, load_params
from components.params.overrides import apply_overrides, parse_set_flags
from tests.helpers.project import ROOT


def test_set_flags_parse_yaml_values():
    assert parse_set_flags(["train.steps=100", "data.paths=[inputs/data/a.jsonl]", "train.lora.enabled=true"]) == {
        "train.steps": 100,
        "data.paths": ["inputs/data/a.jsonl"],
        "train.lora.enabled": True,
    }
    with pytest.raises(ParamsError, match="expected KEY=VALUE"):
        parse_set_flags(["train.steps"])


def test_overrides_are_written_into_params_yaml_with_its_comments(tmp_path):
    path = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    changes = apply_overrides(path, {"train.steps": 3, "train.sampling.temperature": 0.9, "train.methods": ["ebft"]})
    assert changes == [
        "train.steps: 8 -> 3",
        "train.sampling.temperature: 0.6 -> 0.9",
        "train.methods: ['ebft', 'sft'] -> ['ebft']",
    ]
    params = load_params(path)
    assert params.train.steps == 3 and params.train.sampling.temperature == 0.9 and params.train.methods == ["ebft"]
    text = path.read_text()
    assert "# optimizer steps (one rollout batch each)" in text and "# Every knob of the pipeline" in text
    assert apply_overrides(path, {"train.steps": 3}) == []  # already so: nothing to write


def test_a_bad_override_names_the_key_and_leaves_the_file_untouched(tmp_path):
    path = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    before = path.read_text()
    with pytest.raises(ParamsError, match=r"train.stepz: unknown key .*allowed keys here: .*steps"):
        apply_overrides(path, {"train.stepz": 3})
    with pytest.raises(ParamsError, match=r"train.rollouts_per_step=6 is not divisible"):
        apply_overrides(path, {"train.rollouts_per_step": 6})
    assert path.read_text() == before
