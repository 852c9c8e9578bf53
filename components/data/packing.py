"""Documents -> deterministic splits -> tokens -> fixed-length chunks with document ids and answer masks.

- Split: a hash of the document's split key (the question for Q&A, else the text) and ``split_salt``; never of the
  run. Identical documents are dropped (first one kept), so no text is in two splits.
- Order: within a split, documents are packed in the order of their content hash (a fixed shuffle). A chunk cap
  keeps chunks spread evenly over the split's whole token stream, so a small run still sees many documents.
- Tokens: ``text + EOS``, or ``prompt_template(prompt)`` then ``completion_template(completion) + EOS`` with the
  answer part (EOS included) marked in ``qa_mask``; conversations (and, with ``chat``, Q&A) through the tokenizer's
  chat template, the assistant's answers marked. Chunks are consecutive L-token windows of the split's token
  stream; documents may cross chunk boundaries; the final partial chunk is dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from components.data.chat import tokenize_chat
from components.data.chunk_store import ChunkSplit, save_split
from components.data.records import BadRecord, ChatTurn, DataError, Document

SPLITS = ("train", "val", "test")


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def assign_split(split_key: str, val_fraction: float, test_fraction: float, salt: str = "") -> str:
    u = _unit_hash(f"{salt}\0{split_key}")
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def tokenize_document(
    doc: Document,
    tokenizer,
    prompt_template: str = "{prompt}",
    completion_template: str = "{completion}",
    chat: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (int32) and answer mask (bool) of one document, EOS-terminated."""
    return tokenize_documents([doc], tokenizer, prompt_template, completion_template, chat=chat)[0]


def qa_turns(doc: Document, prompt_template: str, completion_template: str) -> tuple[ChatTurn, ...]:
    """A prompt/completion document as a conversation: the templated prompt from the user, the answer from the
    assistant."""
    return (
        ("user", prompt_template.replace("{prompt}", doc.prompt), False),
        ("assistant", completion_template.replace("{completion}", doc.completion), True),
    )


def tokenize_documents(
    docs: list[Document],
    tokenizer,
    prompt_template: str,
    completion_template: str,
    batch_size: int = 256,
    desc: str = "",
    chat: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Token ids and answer masks of documents, through the tokenizer's batched (parallel) path.

    ``text + EOS``, or ``prompt_template(prompt)`` then ``completion_template(completion) + EOS`` with the answer
    part (EOS included) marked True. Conversations, and with ``chat`` also prompt/completion documents, go through
    the tokenizer's chat template with the assistant's answers marked (components/data/chat.py). A source gives
    either plain or Q&A documents, never both."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    eos = tokenizer.eos_token_id
    if docs and eos is None:
        raise DataError(f"the tokenizer ({type(tokenizer).__name__}) has no EOS token to separate documents")
    if len({d.is_qa for d in docs}) > 1:
        raise DataError("a source mixed plain and prompt/completion documents")
    bar = tqdm(total=len(docs), desc=desc, unit="doc", disable=not docs or not desc)
    for lo in range(0, len(docs), batch_size):
        batch = docs[lo : lo + batch_size]
        if chat or any(d.chat is not None for d in batch):
            for d in batch:
                turns = d.chat if d.chat is not None else qa_turns(d, prompt_template, completion_template)
                out.append(tokenize_chat(tokenizer, turns, d.origin))
        elif batch[0].is_qa:
            prompts = tokenizer(
                [prompt_template.replace("{prompt}", d.prompt) for d in batch], add_special_tokens=False
            )
            answers = tokenizer(
                [completion_template.replace("{completion}", d.completion) for d in batch], add_special_tokens=False
            )
            for p, a in zip(prompts["input_ids"], answers["input_ids"], strict=True):
                ids = np.asarray([*p, *a, eos], dtype=np.int32)
                out.append((ids, np.arange(len(ids)) >= len(p)))
        else:
            for ids in tokenizer([d.text for d in batch], add_special_tokens=False)["input_ids"]:
                ids = np.asarray([*ids, eos], dtype=np.int32)
                out.append((ids, np.zeros(len(ids), dtype=bool)))
        bar.update(len(batch))
    bar.close()
    return out


@dataclass
class SplitStats:
    documents: int = 0
    documents_in_chunks: int = 0
    chunks_available: int = 0
    chunks: int = 0
    tail_tokens_dropped: int = 0
    answer_tokens: int = 0
    document_tokens: list[int] = field(default_factory=list)

    def summary(self, seq_len: int) -> dict:
        kept = self.chunks * seq_len
        return {
            "documents": self.documents,
            "documents_in_chunks": self.documents_in_chunks,
            "chunks_available": self.chunks_available,
            "chunks": self.chunks,
            "tokens": kept,
            "tail_tokens_dropped": self.tail_tokens_dropped,
            "answer_token_fraction": round(self.answer_tokens / kept, 4) if kept else 0.0,
        }


def pack_split(
    docs: list[Document],
    tokenizer,
    seq_len: int,
    max_chunks: int | None,
    templates: tuple[str, str],
    desc: str,
    chat: bool = False,
) -> tuple[ChunkSplit, SplitStats, np.ndarray]:
    """Pack ``docs`` (in packing order) into L-token chunks; with a cap, keep ``max_chunks`` chunks spread evenly over
    the whole stream (so a small run still sees many documents). Returns the chunks, their statistics and the
    indices of the documents that appear in them."""
    tokenized = tokenize_documents(docs, tokenizer, *templates, desc=desc, chat=chat) if max_chunks != 0 else []
    stats = SplitStats(documents=len(docs), document_tokens=[len(ids) for ids, _ in tokenized])
    ids = np.concatenate([t[0] for t in tokenized]) if tokenized else np.zeros(0, np.int32)
    qa = np.concatenate([t[1] for t in tokenized]) if tokenized else np.zeros(0, bool)
    doc_ids = np.repeat(np.arange(len(tokenized), dtype=np.int32), stats.document_tokens)
    available = len(ids) // seq_len
    keep = np.arange(available)
    if max_chunks is not None and max_chunks < available:
        keep = (np.arange(max_chunks) * available) // max_chunks
    stats.chunks_available, stats.chunks = available, len(keep)
    stats.tail_tokens_dropped = len(ids) - available * seq_len

    def chunked(stream: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(stream[: available * seq_len].reshape(available, seq_len)[keep].copy())

    split = ChunkSplit(chunked(ids), chunked(doc_ids), chunked(qa))
    used_docs = np.unique(split.doc_ids.numpy())
    stats.documents_in_chunks = len(used_docs)
    stats.answer_tokens = int(split.qa_mask.sum())
    return split, stats, used_docs


@dataclass
class PreparedData:
    splits: dict[str, ChunkSplit]
    documents: dict[str, list[Document]]  # every document of each split, in packing order
    in_chunks: dict[str, np.ndarray]  # indices (into documents[split]) of the documents the kept chunks contain
    card: dict

    def save(self, folder: Path) -> None:
        """``<split>.safetensors`` (the chunks) and ``<split>.jsonl`` (every document, and whether it is in them)."""
        for split, chunks in self.splits.items():
            save_split(folder / f"{split}.safetensors", chunks)
            in_chunks = set(self.in_chunks[split].tolist())
            with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
                for i, doc in enumerate(self.documents[split]):
                    row = {"doc_id": i, "origin": doc.origin, "in_chunks": i in in_chunks}
                    if doc.chat is not None:
                        text = {"messages": [{"role": r, "content": c, "trained": t} for r, c, t in doc.chat]}
                    elif doc.prompt is not None:
                        text = {"prompt": doc.prompt, "completion": doc.completion}
                    else:
                        text = {"text": doc.text}
                    if doc.tests is not None:
                        text |= {"tests": doc.tests, "entry_point": doc.entry_point}
                    f.write(json.dumps(row | text, ensure_ascii=False) + "\n")


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
    chat: bool = False,
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

    splits, documents, in_chunks, summaries, doc_lengths = {}, {}, {}, {}, []
    for split in SPLITS:
        docs = sorted(by_split[split], key=lambda d: hashlib.sha256(d.content_key.encode("utf-8")).digest())
        chunks, stats, used = pack_split(
            docs,
            tokenizer,
            seq_len,
            max_chunks.get(split),
            (prompt_template, completion_template),
            f"packing {split}",
            chat,
        )
        if split == "train" and not len(chunks) and max_chunks.get(split) != 0:
            raise DataError(_no_training_chunk(len(docs), sum(stats.document_tokens), seq_len))
        splits[split], documents[split], in_chunks[split] = chunks, docs, used
        summaries[split] = stats.summary(seq_len)
        doc_lengths += stats.document_tokens
    card = {
        "seq_len": seq_len,
        "records": {"read": read, "skipped": len(skipped), "duplicates_removed": duplicates, "documents": len(seen)},
        "splits": summaries,
        "document_tokens": _length_summary(doc_lengths),
        "skipped_records": skipped,
    }
    return PreparedData(splits, documents, in_chunks, card)


def _no_training_chunk(documents: int, tokens: int, seq_len: int) -> str:
    if not documents:
        return "the training split has no documents: lower data.val_fraction / data.test_fraction or add data"
    return (
        f"no training chunk fits: the training split's {documents} documents hold {tokens} tokens, fewer than "
        f"data.seq_len={seq_len}; lower data.seq_len or add data"
    )


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
