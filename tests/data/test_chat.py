"""Conversations through a chat template: the answer mask covers exactly the assistant's trained turns."""

import copy
import json

import pytest

from components.data.chat import chat_prompt, tokenize_chat
from components.data.in_memory import pack_dataset
from components.data.model_loading import train_tiny_tokenizer
from components.data.packing import prepare_chunks
from components.data.records import BadRecord, DataError, turns_from_messages
from components.data.sources import JsonlSource

# A template of the usual shape: each turn is a header, the content and an end marker; the answer's header comes from
# add_generation_prompt.
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
]


@pytest.fixture(scope="module")
def tokenizer():
    tok = train_tiny_tokenizer()
    tok.chat_template = TEMPLATE
    return tok


def answer_and_rest(tokenizer, ids, mask):
    return tokenizer.decode(ids[mask].tolist()), tokenizer.decode(ids[~mask].tolist())


def test_answer_mask_is_the_assistant_turns_and_the_end_of_the_last(tokenizer):
    ids, mask = tokenize_chat(tokenizer, turns_from_messages(CHAT))
    answer, rest = answer_and_rest(tokenizer, ids, mask)
    assert answer == "Hello!<|end|>\n4<|end|><|endoftext|>"
    assert rest == "<|system|>Be brief.<|end|>\n<|user|>Hi<|end|>\n<|assistant|><|user|>2+2?<|end|>\n<|assistant|>"
    assert ids[-1] == tokenizer.eos_token_id


def test_prompt_completion_conversations_train_only_the_completion(tokenizer):
    turns = turns_from_messages(CHAT, trained_from=3)
    ids, mask = tokenize_chat(tokenizer, turns)
    assert answer_and_rest(tokenizer, ids, mask)[0] == "4<|end|><|endoftext|>"
    assert chat_prompt(tokenizer, "Hi") == "<|user|>Hi<|end|>\n<|assistant|>"


def test_templates_that_cannot_be_split_and_tokenizers_without_one_are_refused(tokenizer):
    rewriting = copy.copy(tokenizer)
    rewriting.chat_template = "{% for m in messages %}{{ m['content'] if loop.last else '.' }}{% endfor %}"
    with pytest.raises(DataError, match="row 3: the tokenizer's chat template does not render"):
        tokenize_chat(rewriting, turns_from_messages(CHAT), "row 3")
    with pytest.raises(DataError, match="has no chat template"):
        tokenize_chat(train_tiny_tokenizer(), turns_from_messages(CHAT))


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([], "non-empty list"),
        ([{"role": "user", "content": "hi"}], "no assistant turn"),
        ([{"role": "robot", "content": "hi"}], "role 'robot'"),
        ([{"role": "user", "content": 3}], "string 'content'"),
        ([{"role": "assistant", "content": "\ud800"}], "not a character"),
    ],
)
def test_bad_conversations_say_why(messages, reason):
    assert reason in turns_from_messages(messages)


def test_jsonl_conversations_are_prepared_with_their_answer_masks(tokenizer, tmp_path):
    path = tmp_path / "chats.jsonl"
    rows = [{"messages": [*CHAT[:3], {"role": "user", "content": f"n{i}?"}, {"role": "assistant", "content": str(i)}]}
            for i in range(40)]  # fmt: skip
    path.write_text("\n".join([*map(json.dumps, rows), json.dumps({"messages": [{"role": "user"}]})]) + "\n")
    records = list(JsonlSource([str(path)], messages_field="messages").records())
    assert isinstance(records[-1], BadRecord) and records[-1].origin.endswith("chats.jsonl:41")
    assert "field 'messages': message 0 is not an object" in records[-1].reason
    kwargs = dict(seq_len=32, val_fraction=0.1, test_fraction=0.0, max_chunks={"train": None, "val": None})
    data = prepare_chunks(records[:-1], tokenizer, **kwargs)
    train = data.splits["train"]
    assert 0 < train.qa_mask.float().mean() < 0.5
    data.save(tmp_path)
    saved = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert saved["messages"][2] == {"role": "assistant", "content": "Hello!", "trained": True}


def test_string_qa_with_chat_template_is_a_user_turn_and_an_answer(tokenizer):
    rows = [{"prompt": f"Say {i}", "completion": f"{i}!"} for i in range(30)]
    chunks = pack_dataset(rows, tokenizer, 64, chat_template=True)
    assert chunks.doc_ids[0, -1] > 0  # the first document ends inside the first chunk
    first_doc = chunks.doc_ids[0] == chunks.doc_ids[0, 0]
    ids, mask = chunks.input_ids[0][first_doc], chunks.qa_mask[0][first_doc]
    assert answer_and_rest(tokenizer, ids, mask) == ("0!<|end|><|endoftext|>", "<|user|>Say 0<|end|>\n<|assistant|>")
    with pytest.raises(DataError, match="row 1: field 'completion' is empty"):
        pack_dataset([rows[0], {"prompt": "x", "completion": " "}], tokenizer, 24)
    with pytest.raises(DataError, match="reads one of these formats: messages: messages; prompt-completion"):
        pack_dataset([{"question": "x"}], tokenizer, 24)
