import pytest
import torch

from components.data.model_loading import (
    ModelSpecError,
    build_base_model,
    load_model,
    load_tokenizer,
    resolve_model_spec,
    save_base_model,
    weights_sha256,
)


@pytest.mark.parametrize(
    ("base", "kind"), [("smollm2-135m", "offline"), ("tiny:llama", "tiny"), ("HuggingFaceTB/SmolLM2-135M", "hub")]
)
def test_specs_resolve_to_their_kind(base, kind):
    assert resolve_model_spec(base).kind == kind


def test_bad_specs_are_explained(tmp_path):
    with pytest.raises(ModelSpecError, match="tiny architectures are 'tiny:llama' and 'tiny:qwen2'"):
        resolve_model_spec("tiny:gpt9")
    with pytest.raises(ModelSpecError, match="looks like a local folder but does not exist"):
        resolve_model_spec("./no/such/model")
    assert resolve_model_spec(str(tmp_path)).kind == "local"


def test_hub_ids_fail_clearly_offline():
    with pytest.raises(ModelSpecError, match="could not be loaded from the model hub"):
        build_base_model(resolve_model_spec("someone/not-a-real-model-xyz"))


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_round_trip_with_card(tmp_path, arch):
    model, tokenizer, source = build_base_model(resolve_model_spec(f"tiny:{arch}"))
    card = save_base_model(model, tokenizer, tmp_path / "base", tmp_path / "tok")
    assert card["weights_sha256"] == weights_sha256(tmp_path / "base") and len(card["weights_sha256"]) == 64
    assert card["vocab_size"] == len(tokenizer) and source["kind"] == "tiny"
    reloaded = load_model(tmp_path / "base")
    tok = load_tokenizer(tmp_path / "tok")
    ids = torch.tensor([tok("def f(x):\n    return x", add_special_tokens=False)["input_ids"]])
    assert torch.allclose(reloaded(ids).logits, model(ids).logits, atol=1e-6)
    assert tok.eos_token_id == reloaded.config.eos_token_id


def test_tiny_tokenizer_is_deterministic():
    from components.data.model_loading import train_tiny_tokenizer

    a, b = train_tiny_tokenizer(), train_tiny_tokenizer()
    text = "for item in items:\n    total += item"
    assert a(text)["input_ids"] == b(text)["input_ids"]
    assert a.decode(a(text)["input_ids"]) == text
