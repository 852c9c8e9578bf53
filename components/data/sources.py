"""Where training documents come from: the user's JSONL files or HF dataset, and the built-in offline sources.

A source yields ``Document``s and ``BadRecord``s (components/data/records.py) and reports a fingerprint of its raw
inputs for the data card. ``make_source`` builds the one ``data.source`` names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from components.data.config import DataConfig
from components.data.hashing import sha256_file
from components.data.offline_sources import (
    DataFrameBenchSource,
    DingTranslationSource,
    HumanEvalSource,
    MBPPSource,
    StdlibCodeSource,
)
from components.data.records import BadRecord, DataError, Document, Source, document_from_row


class JsonlSource(Source):
    """The user's JSONL files: one JSON object per line with a text field, prompt and completion fields, or a
    conversation (a list of messages)."""

    name = "jsonl"

    def __init__(
        self,
        paths: list[str],
        text_field: str = "text",
        prompt_field: str | None = None,
        completion_field: str | None = None,
        tests_field: str | None = None,
        entry_point_field: str | None = None,
        messages_field: str | None = None,
    ):
        self.paths = [file for spec in paths for file in expand_jsonl_path(spec)]
        self.fields = (text_field, prompt_field, completion_field, tests_field, entry_point_field, messages_field)

    def records(self) -> Iterator[Document | BadRecord]:
        for path in self.paths:
            with open(path, "rb") as f:  # decoded line by line: one bad line is a bad record, not a failed stage
                for number, raw in enumerate(f, start=1):
                    if raw.strip():
                        yield self._parse(raw, f"{path}:{number}")

    def _parse(self, raw: bytes, origin: str) -> Document | BadRecord:
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            return BadRecord(origin, f"not valid UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1})")
        except json.JSONDecodeError as err:
            return BadRecord(origin, f"not valid JSON ({err.msg} at column {err.colno})")
        except RecursionError:
            return BadRecord(origin, "JSON nested too deeply to read")
        if not isinstance(row, dict):
            return BadRecord(origin, f"expected a JSON object, got {type(row).__name__}")
        return document_from_row(row, origin, *self.fields)

    def fingerprint(self) -> dict[str, str]:
        return {str(p): sha256_file(p) for p in self.paths}


def expand_jsonl_path(spec: str) -> list[Path]:
    """A file; a folder (every ``*.jsonl`` below it); or a glob (``inputs/data/*.jsonl``). Sorted, so a folder that
    new files are dropped into is read the same way every time."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.rglob("*.jsonl"))
        where = f"folder {spec} has no *.jsonl file"
    elif any(ch in spec for ch in "*?["):
        root, pattern = (Path("/"), spec.lstrip("/")) if path.is_absolute() else (Path("."), spec)
        found = sorted(p for p in root.glob(pattern) if p.is_file())
        where = f"pattern {spec} matches no file"
    else:
        raise DataError(f"data.paths: {spec} does not exist")
    if not found:
        raise DataError(f"data.paths: {where}")
    return found


class HFDatasetSource(Source):
    """A HF dataset: a local folder written by ``save_to_disk``, or a hub id (for users with hub access)."""

    name = "hf"

    def __init__(
        self,
        dataset: str,
        split: str,
        text_field: str,
        prompt_field: str | None = None,
        completion_field: str | None = None,
        tests_field: str | None = None,
        entry_point_field: str | None = None,
        messages_field: str | None = None,
    ):
        self.dataset, self.split = dataset, split
        self.fields = (text_field, prompt_field, completion_field, tests_field, entry_point_field, messages_field)

    def _load(self):
        import datasets

        if Path(self.dataset).is_dir():
            loaded = datasets.load_from_disk(self.dataset)
            return loaded[self.split] if isinstance(loaded, datasets.DatasetDict) else loaded
        try:
            return datasets.load_dataset(self.dataset, split=self.split)
        except Exception as err:  # offline, unknown id, no such split: say which and why
            raise DataError(
                f"data.hf_dataset={self.dataset!r} (split {self.split!r}) could not be loaded: {err}"
            ) from err

    def records(self) -> Iterator[Document | BadRecord]:
        for i, row in enumerate(self._load()):
            yield document_from_row(row, f"{self.dataset}[{self.split}]#{i}", *self.fields)

    def fingerprint(self) -> dict[str, str]:
        return {self.dataset: getattr(self._load(), "_fingerprint", "unknown")}


def make_source(data: DataConfig) -> Source:
    """The source that ``data.source`` names."""
    fields = (
        data.text_field,
        data.prompt_field,
        data.completion_field,
        data.tests_field,
        data.entry_point_field,
        data.messages_field,
    )
    builders = {
        "stdlib-code": lambda: StdlibCodeSource(),
        "humaneval": lambda: HumanEvalSource(),
        "mbpp": lambda: MBPPSource(),
        "dataframebench": lambda: DataFrameBenchSource(),
        "trans-de-en": lambda: DingTranslationSource(data.translation_direction),
        "jsonl": lambda: JsonlSource(data.paths, *fields),
        "hf": lambda: HFDatasetSource(data.hf_dataset, data.hf_split, *fields),
    }
    return builders[data.source]()
