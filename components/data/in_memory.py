"""A dataset in memory (a ``datasets.Dataset``, or any list of dicts) -> packed training chunks, for the Python API.

The columns say the format, as in TRL: ``messages`` (a conversation, rendered with the tokenizer's chat template),
``prompt`` + ``completion`` (strings, or lists of messages: TRL's conversational prompt-completion), or ``text``.
Documents are packed in the dataset's order, with the same tokenization and answer masks as the prepare stage
(components/data/packing.py), and every full chunk is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from components.data.chunk_store import ChunkSplit
from components.data.packing import pack_split
from components.data.records import BadRecord, DataError, Document, document_from_row

FORMATS = {"messages": ("messages",), "prompt-completion": ("prompt", "completion"), "text": ("text",)}


def dataset_format(columns: Iterable[str]) -> str:
    """Which of FORMATS the columns hold (the first that fits, in that order)."""
    present = set(columns)
    for name, needed in FORMATS.items():
        if set(needed) <= present:
            return name
    wanted = "; ".join(f"{name}: {' + '.join(cols)}" for name, cols in FORMATS.items())
    raise DataError(f"the dataset has columns {sorted(present)}; EBFT reads one of these formats: {wanted}")


def dataset_documents(rows: Iterable[Mapping], columns: Iterable[str] | None = None) -> list[Document]:
    """Every row as a document; a row that cannot be used is refused with its index and why."""
    rows = list(rows)
    kind = dataset_format(columns if columns is not None else (rows[0] if rows else ()))
    fields = {
        "messages": ("text", None, None, None, None, "messages"),
        "prompt-completion": ("text", "prompt", "completion"),
        "text": ("text", None, None),
    }[kind]
    docs = []
    for i, row in enumerate(rows):
        doc = document_from_row(dict(row), f"row {i}", *fields)
        if isinstance(doc, BadRecord):
            raise DataError(f"train_dataset {doc.origin}: {doc.reason}")
        docs.append(doc)
    if not docs:
        raise DataError("train_dataset is empty")
    return docs


def pack_dataset(
    dataset,
    tokenizer,
    seq_len: int,
    *,
    chat_template: bool = False,
    prompt_template: str = "{prompt}",
    completion_template: str = "{completion}",
) -> ChunkSplit:
    """The dataset's documents packed into ``seq_len``-token chunks. ``chat_template``: string prompt/completion rows
    are written as a user turn and the assistant's answer (``messages`` rows always are)."""
    columns = getattr(dataset, "column_names", None)
    docs = dataset_documents(dataset, columns)
    split, stats, _ = pack_split(
        docs, tokenizer, seq_len, None, (prompt_template, completion_template), "packing train_dataset", chat_template
    )
    if not len(split):
        raise DataError(
            f"train_dataset's {len(docs)} documents hold {sum(stats.document_tokens)} tokens, fewer than one chunk "
            f"of max_length={seq_len}; lower max_length or add data"
        )
    return split
