"""What every source yields: documents (plain text, or a prompt with its completion) and bad records (one that could
not be read, with where it is and why), behind one small interface."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

# One turn of a conversation: role, content, and whether it is an answer to train on (components/data/chat.py).
ChatTurn = tuple[str, str, bool]


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
    chat: tuple[ChatTurn, ...] | None = None  # a conversation, rendered with the tokenizer's chat template

    @property
    def is_qa(self) -> bool:
        """It has answers (a completion, or assistant turns) that masks and rewards can be limited to."""
        return self.prompt is not None or self.chat is not None

    @property
    def split_key(self) -> str:
        """What decides the split: the question for Q&A (all answers to one question stay together; for a
        conversation, every turn before its first answer), else the text."""
        if self.chat is not None:
            first = next(i for i, turn in enumerate(self.chat) if turn[2])
            return json.dumps(self.chat[:first])
        return self.prompt if self.prompt is not None else self.text

    @property
    def content_key(self) -> str:
        """What decides duplicates."""
        if self.chat is not None:
            return json.dumps(self.chat)
        return f"{self.prompt}\x00{self.completion}" if self.prompt is not None else self.text


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


ROLES = ("system", "user", "assistant", "tool")


def _not_text(value: str) -> str | None:
    """Why a string is not text (a lone surrogate escape such as "\\ud800" decodes but is no character), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"holds {value[err.start]!r}, which is not a character"
    return None


def turns_from_messages(messages: object, trained_from: int = 0) -> tuple[ChatTurn, ...] | str:
    """``[{"role", "content"}, ...]`` -> conversation turns (assistant turns from index ``trained_from`` on are
    answers), or why the value is not a conversation."""
    if not isinstance(messages, list) or not messages:
        return f"expected a non-empty list of messages, got {type(messages).__name__}"
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return f"message {i} is not an object with a string 'content'"
        role = message.get("role")
        if role not in ROLES:
            return f"message {i} has role {role!r}; allowed: {', '.join(ROLES)}"
        if problem := _not_text(message["content"]):
            return f"message {i} {problem}"
        turns.append((role, message["content"], role == "assistant" and i >= trained_from))
    if not any(trained for _, _, trained in turns):
        return "the conversation has no assistant turn to train on"
    return tuple(turns)


def document_from_row(
    row: dict,
    origin: str,
    text_field: str,
    prompt_field: str | None,
    completion_field: str | None,
    tests_field: str | None = None,
    entry_point_field: str | None = None,
    messages_field: str | None = None,
) -> Document | BadRecord:
    """One row of the user's data as a document: a conversation (``messages_field``; or prompt and completion given
    as lists of messages, TRL's conversational prompt-completion), a prompt with its completion, or a text."""
    if messages_field:
        if messages_field not in row:
            return BadRecord(origin, f"missing field {messages_field!r} (has: {', '.join(sorted(row)) or 'none'})")
        turns = turns_from_messages(row[messages_field])
        return (
            Document(origin, chat=turns)
            if isinstance(turns, tuple)
            else BadRecord(origin, f"field {messages_field!r}: {turns}")
        )
    if prompt_field and isinstance(row.get(prompt_field), list) and isinstance(row.get(completion_field), list):
        turns = turns_from_messages(row[prompt_field] + row[completion_field], trained_from=len(row[prompt_field]))
        if isinstance(turns, str):
            return BadRecord(origin, f"fields {prompt_field!r} + {completion_field!r}: {turns}")
        return Document(origin, chat=turns)
    fields = [prompt_field, completion_field] if prompt_field else [text_field]
    fields += [f for f in (tests_field, entry_point_field) if f]
    for field in fields:
        if field not in row:
            return BadRecord(origin, f"missing field {field!r} (has: {', '.join(sorted(row)) or 'none'})")
        if not isinstance(row[field], str):
            return BadRecord(origin, f"field {field!r} is {type(row[field]).__name__}, expected a string")
        if not row[field].strip():
            return BadRecord(origin, f"field {field!r} is empty")
        if problem := _not_text(row[field]):
            return BadRecord(origin, f"field {field!r} {problem}")
    if prompt_field:
        task = {"tests": row[tests_field], "entry_point": row[entry_point_field]} if tests_field else {}
        return Document(origin, prompt=row[prompt_field], completion=row[completion_field], **task)
    return Document(origin, text=row[text_field])
