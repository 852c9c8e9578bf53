import numpy as np
import pytest
import torch

from components.data.model_loading import train_tiny_tokenizer
from components.data.packing import assign_split, prepare_chunks, tokenize_document
from components.data.records import BadRecord, DataError, Document


@pytest.fixture(scope="module")
def tokenizer():
    return train_tiny_tokenizer()


def docs(n: int, qa: bool = False) -> list[Document]:
    if qa:
        return [Document(f"q{i}", prompt=f"def f{i}(x):\n", completion=f"    return x + {i}\n") for i in range(n)]
    return [Document(f"d{i}", text=f"value_{i} = {i} * {i}\nprint(value_{i})\n") for i in range(n)]


def prepare(records, tokenizer, **overrides):
    kwargs = dict(
        seq_len=16, val_fraction=0.2, test_fraction=0.1, max_chunks={"train": None, "val": None, "test": None}
    )
    return prepare_chunks(records, tokenizer, **(kwargs | overrides))


def test_split_depends_only_on_the_document_and_salt():
    keys = [f"document {i}" for i in range(4000)]
    splits = [assign_split(k, 0.1, 0.05) for k in keys]
    assert splits == [assign_split(k, 0.1, 0.05) for k in keys]
    fractions = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert abs(fractions["val"] - 0.1) < 0.02 and abs(fractions["test"] - 0.05) < 0.015
    assert [assign_split(k, 0.1, 0.05, salt="other") for k in keys] != splits


def test_chunks_are_the_token_stream_with_document_ids(tokenizer):
    data = prepare(docs(60), tokenizer)
    train = data.splits["train"]
    assert train.input_ids.shape[1] == 16 and train.input_ids.dtype == torch.int32
    # every document ends with EOS and document ids are non-decreasing along the stream
    stream_docs = train.doc_ids.flatten()
    assert torch.all(stream_docs[1:] >= stream_docs[:-1])
    first_doc = data.documents["train"][0]
    ids, _ = tokenize_document(first_doc, tokenizer)
    assert train.input_ids.flatten()[: len(ids)].tolist() == ids.tolist()
    assert ids[-1] == tokenizer.eos_token_id
    card = data.card
    total = sum(card["splits"][s]["chunks"] for s in ("train", "val", "test"))
    assert total == sum(len(data.splits[s]) for s in ("train", "val", "test")) and total > 0
    assert card["records"] == {"read": 60, "skipped": 0, "duplicates_removed": 0, "documents": 60}


def test_splits_are_disjoint_and_duplicates_are_dropped(tokenizer):
    records = docs(50) + docs(50)[:10]  # ten exact duplicates
    data = prepare(records, tokenizer)
    assert data.card["records"]["duplicates_removed"] == 10
    seen = [d.text for s in ("train", "val", "test") for d in data.documents[s]]
    assert len(seen) == len(set(seen)) == 50


def test_answer_tokens_are_marked(tokenizer):
    data = prepare(docs(40, qa=True), tokenizer, val_fraction=0.0, test_fraction=0.0)
    doc = data.documents["train"][0]
    _, qa = tokenize_document(doc, tokenizer)
    prompt_len = len(tokenizer(doc.prompt, add_special_tokens=False)["input_ids"])
    assert not qa[:prompt_len].any() and qa[prompt_len:].all()
    train = data.splits["train"]
    assert train.qa_mask.flatten()[: len(qa)].tolist() == qa.tolist()
    assert 0 < data.card["splits"]["train"]["answer_token_fraction"] < 1


def test_templates_wrap_prompts_and_answers(tokenizer):
    doc = Document("x", prompt="Hallo.", completion="Hello.")
    ids, qa = tokenize_document(doc, tokenizer, "German: {prompt}\nEnglish:", " {completion}")
    assert tokenizer.decode(ids[~qa]) == "German: Hallo.\nEnglish:"
    assert tokenizer.decode(ids[qa][:-1]) == " Hello."


def test_chunk_caps_and_dropped_tail(tokenizer):
    data = prepare(docs(80), tokenizer, max_chunks={"train": 3, "val": 0, "test": None})
    assert len(data.splits["train"]) == 3 and len(data.splits["val"]) == 0
    card = data.card["splits"]["train"]
    assert card["chunks"] == 3 and card["tokens"] == 48 and card["chunks_available"] > 3
    # the kept chunks are spread over the stream: first, and about a third and two thirds of the way
    full = prepare(docs(80), tokenizer).splits["train"]
    n = card["chunks_available"]
    assert torch.equal(data.splits["train"].input_ids, full.input_ids[[0, n // 3, 2 * n // 3]])
    assert card["documents_in_chunks"] >= 3


def test_bad_records_fail_with_their_origin_or_are_listed_when_skipped(tokenizer):
    records = [*docs(20), BadRecord("a.jsonl:7", "not valid JSON")]
    with pytest.raises(DataError, match=r"a.jsonl:7: not valid JSON \(set data.on_bad_record: skip"):
        prepare(records, tokenizer)
    data = prepare(records, tokenizer, on_bad_record="skip")
    assert data.card["records"]["skipped"] == 1
    assert data.card["skipped_records"] == [{"origin": "a.jsonl:7", "reason": "not valid JSON"}]


def test_a_source_without_usable_documents_is_an_error(tokenizer):
    with pytest.raises(DataError, match="no usable documents"):
        prepare([BadRecord("x", "bad")], tokenizer, on_bad_record="skip")


def test_packing_is_deterministic(tokenizer):
    a, b = prepare(docs(70), tokenizer), prepare(list(reversed(docs(70))), tokenizer)
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split].input_ids, b.splits[split].input_ids)
    assert np.isclose(a.card["document_tokens"]["mean"], b.card["document_tokens"]["mean"])


def test_a_chunk_length_no_training_document_reaches_is_refused(tokenizer):
    with pytest.raises(DataError, match=r"no training chunk fits: .* fewer than data.seq_len=1000000000"):
        prepare(docs(10), tokenizer, seq_len=1_000_000_000)


def test_an_unreadable_chunk_file_is_named_with_the_fix(tmp_path):
    from components.data.chunk_store import load_split

    (tmp_path / "train.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match=r"train.safetensors cannot be read .*dvc checkout data"):
        load_split(tmp_path, "train")
