import json

import pytest

from components.data.offline_sources import (
    DataFrameBenchSource,
    DingTranslationSource,
    HumanEvalSource,
    StdlibCodeSource,
)
from components.data.records import BadRecord, DataError, Document
from components.data.sources import HFDatasetSource, JsonlSource


def write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_text_documents_and_bad_records_with_file_and_line(tmp_path):
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            json.dumps({"text": "def f():\n    return 1\n"}),
            "{not json",
            json.dumps({"body": "x"}),
            json.dumps(["a list"]),
            json.dumps({"text": 3}),
            "",
            json.dumps({"text": "   "}),
        ],
    )
    records = list(JsonlSource([str(path)]).records())
    assert isinstance(records[0], Document) and records[0].origin == f"{path}:1"
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert [b.origin.rsplit(":", 1)[1] for b in bad] == ["2", "3", "4", "5", "7"]
    assert "not valid JSON" in bad[0].reason
    assert "missing field 'text' (has: body)" in bad[1].reason
    assert "expected a JSON object, got list" in bad[2].reason
    assert "field 'text' is int" in bad[3].reason
    assert "field 'text' is empty" in bad[4].reason


def test_jsonl_prompt_completion_documents(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [json.dumps({"q": "Add 1 and 2.", "a": "3"})])
    (doc,) = JsonlSource([str(path)], prompt_field="q", completion_field="a").records()
    assert doc.is_qa and doc.prompt == "Add 1 and 2." and doc.completion == "3" and doc.split_key == "Add 1 and 2."


def test_missing_jsonl_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl does not exist"):
        JsonlSource([str(tmp_path / "nope.jsonl")])


def test_stdlib_source_lists_non_test_python_files():
    source = StdlibCodeSource()
    files = source.files()
    rel = [str(f.relative_to(source.root)) for f in files]
    assert "json/decoder.py" in rel and len(files) > 500
    assert not any(part in ("test", "tests", "idle_test", "site-packages") for r in rel for part in r.split("/")[:-1])


def test_humaneval_source_has_164_problems():
    docs = list(HumanEvalSource().records())
    assert len(docs) == 164 and all(d.is_qa for d in docs)
    assert docs[0].origin == "humaneval:HumanEval/0"


def test_hf_local_dataset_folder(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["a = 1\n", "b = 2\n"], "id": [1, 2]}).save_to_disk(tmp_path / "ds")
    records = list(HFDatasetSource(str(tmp_path / "ds"), "train", "text").records())
    assert [r.text for r in records] == ["a = 1\n", "b = 2\n"]
    assert records[1].origin.endswith("[train]#1")


def test_ding_dictionary_lines_become_sentence_pairs(tmp_path):
    dictionary = tmp_path / "de-en"
    dictionary.write_text(
        "# comment :: header\n"
        "Haus {n} | Das Haus ist sehr alt. :: house | The house is very old indeed.\n"
        "Er kam (gestern) spät nach Hause. :: He came home late (yesterday) at night.\n"
        "zu kurz. :: Too short.\n"
        "Eins | Zwei :: one\n"
    )
    source = DingTranslationSource("de-en", path=dictionary)
    records = list(source.records())
    docs = [r for r in records if isinstance(r, Document)]
    assert [(d.prompt, d.completion) for d in docs] == [
        ("Das Haus ist sehr alt.", "The house is very old indeed."),
        ("Er kam spät nach Hause.", "He came home late at night."),
    ]
    assert [r.origin for r in records if isinstance(r, BadRecord)] == ["trans-de-en:5"]
    reverse = [r for r in DingTranslationSource("en-de", path=dictionary).records() if isinstance(r, Document)]
    assert reverse[0].prompt == "The house is very old indeed."


def test_dataframebench_prompt_rendering_follows_the_package_rule():
    prompt = (
        "Do it.\n\n{library_instruction}\n\n```python\n{library_import}\nimport numpy as np\n\ndef f(d: dict):\n```"
    )
    rendered = DataFrameBenchSource.render_prompt(prompt)
    assert "Use pandas as the data processing library in your solution." in rendered
    assert "import pandas as pd\nimport numpy as np" in rendered and "{" not in rendered.replace("{}", "")


def test_jsonl_paths_may_be_a_folder_or_a_glob_read_in_sorted_order(tmp_path, monkeypatch):
    drop = tmp_path / "inputs/data"
    (drop / "2026").mkdir(parents=True)
    for name in ("b.jsonl", "a.jsonl", "2026/c.jsonl"):
        write_jsonl(drop / name, [json.dumps({"text": f"doc {name}"})])
    (drop / "notes.txt").write_text("not data")
    texts = [d.text for d in JsonlSource([str(drop)]).records()]
    assert texts == ["doc 2026/c.jsonl", "doc a.jsonl", "doc b.jsonl"]
    monkeypatch.chdir(tmp_path)
    assert [d.text for d in JsonlSource(["inputs/data/*.jsonl"]).records()] == ["doc a.jsonl", "doc b.jsonl"]
    with pytest.raises(DataError, match=r"pattern inputs/data/\*\.csv matches no file"):
        JsonlSource(["inputs/data/*.csv"])
    with pytest.raises(DataError, match=r"folder .*2027 has no \*\.jsonl file"):
        (drop / "2027").mkdir()
        JsonlSource([str(drop / "2027")])


def test_undecodable_bytes_lone_surrogates_and_deep_nesting_are_bad_records(tmp_path):
    path = tmp_path / "hostile.jsonl"
    lines = [
        json.dumps({"text": "ok"}).encode(),
        b'{"text": "caf\xe9"}',  # latin-1, not UTF-8
        b'{"text": "\\ud800 alone"}',  # a lone surrogate escape: valid JSON, not text
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"text": "also ok"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    records = list(JsonlSource([str(path)]).records())
    assert [type(r).__name__ for r in records] == ["Document", "BadRecord", "BadRecord", "BadRecord", "Document"]
    bad = {r.origin: r.reason for r in records if isinstance(r, BadRecord)}
    assert "not valid UTF-8 (byte 0xe9 at column 14)" in bad[f"{path}:2"]
    assert "field 'text' holds '\\ud800', which is not a character" in bad[f"{path}:3"]
    assert "nested too deeply" in bad[f"{path}:4"]
