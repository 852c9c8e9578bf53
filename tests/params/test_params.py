import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.params.loading import ParamsError, load_params, validate_params
from components.params.presets import apply_preset, available_presets, set_flags


def defaults() -> dict:
    return yaml.safe_load(Path("params.yaml").read_text())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"data": {"on_bad_record": "ignore"}}, r"data.on_bad_record = 'ignore': Input should be 'fail' or 'skip'"),
        ({"data": {"seq_len": "long"}}, r"data.seq_len = 'long': Input should be a valid integer"),
        ({"data": {"val_fraction": 1.5}}, r"data.val_fraction = 1.5: Input should be less than 1"),
        (
            {"train": {"loss": {"ce_coeff": 0.1}}},
            r"train.loss.ce_coeff: unknown key .*allowed keys here: rl_coef, ce_coef",
        ),
        ({"trian": {}}, r"trian: unknown key .*allowed keys here: data, layout, model, features, train"),
        ({"features": {"pooling": "max"}}, r"features.pooling = 'max': Input should be 'last_token', 'mean'"),
        ({"data": {"seq_len": 265}}, r"nearest valid seq_len: 264 or 272"),
        ({"train": {"qa_masking": True}}, r"train.qa_masking is on but data.source='stdlib-code' has no answers"),
        ({"train": {"methods": ["rlvr"]}}, r"train.methods has 'rlvr' but data.source='stdlib-code' has no answers"),
        (
            {"train": {"rlvr": {"reward": "bleu"}}},
            r"train.rlvr.reward = 'bleu': Input should be 'chrf', 'exact_match' or 'unit_tests'",
        ),
        (
            {"data": {"source": "trans-de-en"}, "train": {"methods": ["rlvr"], "rlvr": {"reward": "unit_tests"}}},
            r"train.rlvr.reward='unit_tests' but data.source='trans-de-en' has no unit tests",
        ),
        (
            {
                "data": {"source": "humaneval", "prompt_template": "Q: {prompt}"},
                "train": {"methods": ["rlvr"], "rlvr": {"reward": "unit_tests"}},
            },
            r"data.prompt_template must be '\{prompt\}' \(it is 'Q: \{prompt\}'\)",
        ),
        (
            {"data": {"prompt_field": "q", "completion_field": "a", "tests_field": "t"}},
            r"data.tests_field and data.entry_point_field must be given together",
        ),
        ({"train": {"loss": {"kl_estimator": "k1"}}}, r"train.loss.kl_estimator = 'k1': Input should be 'k2' or 'k3'"),
        ({"data": {"source": "jsonl"}}, r"data.source='jsonl' needs data.paths"),
        ({"data": {"max_chunks": {"dev": 3}}}, r"data.max_chunks.dev"),
        (
            {"train": {"sampling": {"n_samples": 2}}},
            r"n_samples=2 with rewards.diversity_coef=0.5: the diversity baseline needs n_samples >= 3",
        ),
    ],
)
def test_bad_params_name_the_key_the_value_and_what_is_allowed(raw, expected):
    with pytest.raises(ParamsError, match=expected):
        validate_params(raw)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ParamsError) as err:
        validate_params({"data": {"on_bad_record": "x", "seq_len": "y"}})
    assert "on_bad_record" in str(err.value) and "seq_len" in str(err.value)


def test_missing_params_file_is_explained(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_validates_on_top_of_the_defaults(name):
    merged = apply_preset(defaults(), name)
    validate_params(merged)


def test_paper_presets_match_the_spec_table():
    params = defaults()
    translation = validate_params(apply_preset(params, "translation"))
    assert (translation.layout.stride, translation.layout.context, translation.layout.block_len) == (2, 4, 4)
    assert translation.features.pooling == "mean" and translation.data.seq_len == 1024
    for name in ("qa-coding", "unstructured-code"):
        p = validate_params(apply_preset(params, name))
        assert (p.layout.stride, p.layout.context, p.layout.block_len) == (8, 8, 8)
        assert p.features.pooling == "last_token"
    for name in ("qa-coding", "unstructured-code", "translation"):  # the authors: packed chunks, no masks
        p = validate_params(apply_preset(params, name))
        assert not p.layout.document_masking and not p.train.qa_masking, name
        assert p.train.loss.kl_estimator == "k2"


def test_preset_flags_reproduce_the_preset_through_dvc_style_parsing():
    """``-S key=value`` values are parsed as YAML by DVC; applying them must give the preset's values back."""
    params = defaults()
    flags = set_flags("translation")
    for key, value in (f.split("=", 1) for f in flags[1::2]):
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    assert validate_params(params) == validate_params(apply_preset(defaults(), "translation"))


def test_presets_cli_prints_shell_ready_flags():
    out = subprocess.run(
        [sys.executable, "-m", "components.params.presets", "flags", "translation"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    args = shlex.split(out)
    assert args[0] == "-S" and "data.prompt_template=" in " ".join(args)
    unknown = subprocess.run(
        [sys.executable, "-m", "components.params.presets", "show", "nope"], capture_output=True, text=True
    )
    assert unknown.returncode != 0 and "unknown preset 'nope'" in unknown.stderr


def test_settings_shared_by_params_yaml_and_the_library_are_declared_once():
    """params.yaml's sections inherit the rooms' settings: a field the EBFT step, the layout and params.yaml share is
    declared in exactly one class."""
    import inspect

    from pydantic import BaseModel

    import components.params.schema  # noqa: F401 - imports every room's settings

    modules = [m for name, m in sys.modules.items() if name.startswith("components.")]
    models = {c for m in modules for _, c in inspect.getmembers(m, inspect.isclass) if issubclass(c, BaseModel)}
    shared = ("document_masking", "qa_masking", "forward_mode", "sampling", "rewards", "loss", "context", "stride",
              "block_len", "layers", "pooling", "token_norm")  # fmt: skip

    def declares(model, field: str) -> bool:
        """Declared here, not taken from its home (EBFTConfig's fields: components/training/ebft_config.py)."""
        extra = model.model_fields[field].json_schema_extra if field in model.model_fields else None
        return field in inspect.get_annotations(model) and not (isinstance(extra, dict) and "home" in extra)

    for field in shared:
        declaring = sorted(c.__qualname__ for c in models if declares(c, field))
        assert len(declaring) == 1, f"{field} is declared in {declaring}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train:\n  steps: [1\n", r"params.yaml:3:1: not valid YAML"),
        ("train:\n  steps: 3\ndata:\n  seq_len: 72\ntrain:\n  steps: 4\n", r"params.yaml:5:1: .*duplicate key 'train' "
         r"\(first at line 1\)"),
        ("", r"params.yaml is empty"),
        ("# only a comment\n", r"params.yaml is empty"),
        ("- a list\n", r"expected a mapping of sections"),
        ("train:\n  steps: true\n", r"train.steps = True: expected a number, not true/false"),
        ("train:\n  methods: []\n", r"train.methods = \[\]: List should have at least 1 item"),
        (f"train:\n  seed: {2**80}\n", r"train.seed = 1208925819614629174706176: Input should be less than 4294967296"),
    ],
)  # fmt: skip
def test_a_broken_params_file_names_the_file_and_the_key(tmp_path, text, expected):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=expected):
        load_params(path)
