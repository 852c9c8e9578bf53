"""Documents -> deterministic splits -> tokens -> fixed-length chunks with document ids and answer masks.

- Split: a hash of the document's split key (the question for Q&A, else the text) and ``split_salt``; never of the
  run. Identical documents are dropped (first one kept), so no text is in two splits.
- Order: within a split, documents are packed in the order of their content hash (a fixed shuffle), so a chunk cap
  takes a spread-out sample instead of the first files of the source.
- Tokens: ``text + EOS``, or ``prompt_template(prompt)`` then ``completion_template(completion) + EOS`` with the
  answer part (EOS included) marked in ``qa_mask``. Chunks are consecutive L-token windows of the split's token
  stream; documents may cross chunk boundaries; the final partial chunk is dropped and counted.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from components.chunk_store import ChunkSplit
from components.data_sources import BadRecord, DataError, Document

SPLITS = ("train", "val", "test")


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def assign_split(split_key: str, val_fraction: float, test_fraction: float, salt: str = "") -> str:
    u = _unit_hash(f"{salt}\0{split_key}")
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def tokenize_document(
    doc: Document, tokenizer, prompt_template: str = "{prompt}", completion_template: str = "{completion}"
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (int32) and answer mask (bool) of one document, EOS-terminated."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError(f"the tokenizer ({type(tokenizer).__name__}) has no EOS token to separate documents")
    if doc.is_qa:
        prompt = tokenizer(prompt_template.replace("{prompt}", doc.prompt), add_special_tokens=False)["input_ids"]
        answer = tokenizer(completion_template.replace("{completion}", doc.completion), add_special_tokens=False)
        answer = [*answer["input_ids"], eos]
        return (
            np.asarray(prompt + answer, dtype=np.int32),
            np.concatenate([np.zeros(len(prompt), bool), np.ones(len(answer), bool)]),
        )
    ids = [*tokenizer(doc.text, add_special_tokens=False)["input_ids"], eos]
    return np.asarray(ids, dtype=np.int32), np.zeros(len(ids), dtype=bool)


@dataclass
class SplitStats:
    documents_assigned: int = 0
    documents_packed: int = 0
    chunks: int = 0
    tail_tokens_dropped: int = 0
    answer_tokens: int = 0
    document_tokens: list[int] = field(default_factory=list)

    def summary(self, seq_len: int) -> dict:
        packed = self.chunks * seq_len
        return {
            "documents_assigned": self.documents_assigned,
            "documents_packed": self.documents_packed,
            "chunks": self.chunks,
            "tokens": packed,
            "tail_tokens_dropped": self.tail_tokens_dropped,
            "answer_token_fraction": round(self.answer_tokens / packed, 4) if packed else 0.0,
        }


def pack_split(
    docs: list[Document], tokenizer, seq_len: int, max_chunks: int | None, templates: tuple[str, str], desc: str
) -> tuple[ChunkSplit, SplitStats]:
    """Pack ``docs`` (already in packing order) into at most ``max_chunks`` chunks; ``docs[:stats.documents_packed]``
    are the ones (at least partly) inside the chunks."""
    stats = SplitStats(documents_assigned=len(docs))
    ids_parts, qa_parts, doc_parts = [], [], []
    buffered = 0
    limit = None if max_chunks is None else max_chunks * seq_len
    for index, doc in enumerate(tqdm(docs, desc=desc, unit="doc", disable=not docs or max_chunks == 0)):
        if limit is not None and buffered >= limit:
            break
        ids, qa = tokenize_document(doc, tokenizer, *templates)
        ids_parts.append(ids)
        qa_parts.append(qa)
        doc_parts.append(np.full(len(ids), index, dtype=np.int32))
        stats.document_tokens.append(len(ids))
        buffered += len(ids)
    stream = [
        np.concatenate(parts) if parts else np.zeros(0, dtype)
        for parts, dtype in ((ids_parts, np.int32), (qa_parts, bool), (doc_parts, np.int32))
    ]
    n_chunks = len(stream[0]) // seq_len
    if max_chunks is not None:
        n_chunks = min(n_chunks, max_chunks)
    used = n_chunks * seq_len
    stats.chunks = n_chunks
    stats.documents_packed = int(stream[2][used - 1]) + 1 if used else 0  # docs[:this] reach the chunks
    stats.tail_tokens_dropped = len(stream[0]) - used
    stats.answer_tokens = int(stream[1][:used].sum())
    ids, qa, doc_ids = (torch.from_numpy(s[:used].reshape(n_chunks, seq_len).copy()) for s in stream)
    return ChunkSplit(ids, doc_ids, qa), stats


@dataclass
class PreparedData:
    splits: dict[str, ChunkSplit]
    documents: dict[str, list[Document]]  # every document of each split, in packing order (card says how many packed)
    card: dict


def prepare_chunks(
    records: Iterable[Document | BadRecord],
    tokenizer,
    *,
    seq_len: int,
    val_fraction: float,
    test_fraction: float,
    max_chunks: dict[str, int | None],
    on_bad_record: str = "fail",
    split_salt: str = "",
    prompt_template: str = "{prompt}",
    completion_template: str = "{completion}",
) -> PreparedData:
    """Everything the prepare stage computes, from a source's records."""
    by_split: dict[str, list[Document]] = {s: [] for s in SPLITS}
    skipped: list[dict] = []
    seen: set[str] = set()
    read = duplicates = 0
    for record in records:
        read += 1
        if isinstance(record, BadRecord):
            if on_bad_record == "fail":
                raise DataError(f"{record.origin}: {record.reason} (set data.on_bad_record: skip to skip such records)")
            skipped.append({"origin": record.origin, "reason": record.reason})
            continue
        content = hashlib.sha256(record.content_key.encode("utf-8")).hexdigest()
        if content in seen:
            duplicates += 1
            continue
        seen.add(content)
        by_split[assign_split(record.split_key, val_fraction, test_fraction, split_salt)].append(record)
    if not seen:
        raise DataError(f"the source gave no usable documents ({read} records read, {len(skipped)} skipped)")

    splits, documents, summaries, doc_lengths = {}, {}, {}, []
    for split in SPLITS:
        docs = sorted(by_split[split], key=lambda d: hashlib.sha256(d.content_key.encode("utf-8")).digest())
        chunks, stats = pack_split(
            docs, tokenizer, seq_len, max_chunks.get(split), (prompt_template, completion_template), f"packing {split}"
        )
        splits[split], documents[split] = chunks, docs
        summaries[split] = stats.summary(seq_len)
        doc_lengths += stats.document_tokens
    card = {
        "seq_len": seq_len,
        "records": {"read": read, "skipped": len(skipped), "duplicates_removed": duplicates, "documents": len(seen)},
        "splits": summaries,
        "document_tokens": _length_summary(doc_lengths),
        "skipped_records": skipped,
    }
    return PreparedData(splits, documents, card)


def _length_summary(lengths: list[int]) -> dict:
    if not lengths:
        return {"count": 0}
    return {
        "count": len(lengths),
        "mean": round(statistics.fmean(lengths), 1),
        "median": statistics.median(lengths),
        "min": min(lengths),
        "max": max(lengths),
    }
