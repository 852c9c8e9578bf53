"""What every source yields: documents (plain text, or a prompt with its completion) and bad records (one that could
not be read, with where it is and why), behind one small interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    origin: str  # where it came from, for messages and the data card: "path:line", "stdlib:json/decoder.py"
    text: str | None = None
    prompt: str | None = None
    completion: str | None = None
    # A function-call task (HumanEval's format): code defining check(candidate), and the function it calls. What
    # the RLVR baseline's unit-test reward runs a sampled answer against (docs/method.md §6).
    tests: str | None = None
    entry_point: str | None = None

    @property
    def is_qa(self) -> bool:
        return self.prompt is not None

    @property
    def split_key(self) -> str:
        """What decides the split: the question for Q&A (all answers to one question stay together), else the text."""
        return self.prompt if self.is_qa else self.text

    @property
    def content_key(self) -> str:
        """What decides duplicates."""
        return f"{self.prompt}\x00{self.completion}" if self.is_qa else self.text


@dataclass(frozen=True)
class BadRecord:
    origin: str
    reason: str


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and line."""


class Source(ABC):
    name: str

    @abstractmethod
    def records(self) -> Iterator[Document | BadRecord]: ...

    @abstractmethod
    def fingerprint(self) -> dict[str, str]:
        """Hashes of the raw inputs (for the data card and reproducibility)."""


def document_from_row(
    row: dict,
    origin: str,
    text_field: str,
    prompt_field: str | None,
    completion_field: str | None,
    tests_field: str | None = None,
    entry_point_field: str | None = None,
) -> Document | BadRecord:
    fields = [prompt_field, completion_field] if prompt_field else [text_field]
    fields += [f for f in (tests_field, entry_point_field) if f]
    for field in fields:
        if field not in row:
            return BadRecord(origin, f"missing field {field!r} (has: {', '.join(sorted(row)) or 'none'})")
        if not isinstance(row[field], str):
            return BadRecord(origin, f"field {field!r} is {type(row[field]).__name__}, expected a string")
        if not row[field].strip():
            return BadRecord(origin, f"field {field!r} is empty")
        try:
            row[field].encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate escape such as "\ud800" decodes but is no text
            return BadRecord(origin, f"field {field!r} holds {row[field][err.start]!r}, which is not a character")
    if prompt_field:
        task = {"tests": row[tests_field], "entry_point": row[entry_point_field]} if tests_field else {}
        return Document(origin, prompt=row[prompt_field], completion=row[completion_field], **task)
    return Document(origin, text=row[text_field])
