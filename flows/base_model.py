"""Stage ``base_model``: resolve ``model.base`` to models/base (weights + tokenizer) and models/tokenizer."""

from __future__ import annotations

import time
from pathlib import Path

from components.data.atomic_io import atomic_directory, atomic_write_json
from components.data.model_loading import build_base_model, resolve_model_spec, save_base_model
from components.params.loading import load_params
from components.project.inputs import check_inside_inputs
from flows.stage_cli import stage_main


def run(
    params_path: str = "params.yaml",
    model_dir: str = "models/base",
    tokenizer_dir: str = "models/tokenizer",
    card_path: str = "metrics/base_model.json",
) -> dict:
    params = load_params(params_path)
    check_inside_inputs(params, Path.cwd())  # DVC must see a local input change
    start = time.perf_counter()
    spec = resolve_model_spec(params.model.base)
    print(f"base model: {params.model.base} ({spec.kind}), stored as {params.model.dtype}")
    model, tokenizer, source = build_base_model(spec, params.model.dtype)
    with atomic_directory(model_dir) as model_tmp, atomic_directory(tokenizer_dir) as tok_tmp:
        facts = save_base_model(model, tokenizer, Path(model_tmp), Path(tok_tmp))
    card = {"spec": params.model.base, "source": source, **facts, "seconds": round(time.perf_counter() - start, 2)}
    atomic_write_json(card_path, card)
    print(f"base model ready in {model_dir}: {facts['parameters']:,} parameters, sha256 {facts['weights_sha256'][:16]}")
    return card


def main(argv: list[str] | None = None) -> None:
    stage_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
