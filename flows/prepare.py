"""Stage ``prepare``: documents from the configured source -> packed chunks in data/ and the data card."""

from __future__ import annotations

import time
from pathlib import Path

from components.data.atomic_io import atomic_directory, atomic_write_json
from components.data.model_loading import load_tokenizer, tokenizer_sha256
from components.data.packing import prepare_chunks
from components.data.sources import make_source
from components.params.loading import load_params
from components.project.inputs import check_inside_inputs
from flows.stage_cli import stage_main


def run(
    params_path: str = "params.yaml",
    tokenizer_dir: str = "models/tokenizer",
    data_dir: str = "data",
    card_path: str = "metrics/data_card.json",
) -> dict:
    params = load_params(params_path)
    check_inside_inputs(params, Path.cwd())  # DVC must see a local input change
    data = params.data
    start = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_dir)
    source = make_source(data)
    print(f"prepare: source {data.source}, chunks of {data.seq_len} tokens")
    prepared = prepare_chunks(
        source.records(),
        tokenizer,
        seq_len=data.seq_len,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
        max_chunks=data.max_chunks,
        on_bad_record=data.on_bad_record,
        split_salt=data.split_salt,
        prompt_template=data.prompt_template,
        completion_template=data.completion_template,
        chat=data.chat_template,
    )
    with atomic_directory(data_dir) as tmp:
        prepared.save(tmp)
    card = {
        "source": data.source,
        "source_fingerprint": source.fingerprint(),
        "tokenizer_sha256": tokenizer_sha256(tokenizer_dir),
        **prepared.card,
        "seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(card_path, card)
    sizes = ", ".join(f"{s}: {v['chunks']} chunks" for s, v in card["splits"].items())
    print(f"prepare done in {card['seconds']} s ({sizes}); skipped {card['records']['skipped']} bad records")
    return card


def main(argv: list[str] | None = None) -> None:
    stage_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
