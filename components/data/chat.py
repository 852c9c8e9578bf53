"""Conversations rendered with the tokenizer's own chat template, with the answer tokens marked.

A conversation is a list of turns ``(role, content, trained)``: ``trained`` marks the assistant turns whose text is
an answer (in ``qa_mask``, so rewards and CE can be limited to them). The template is applied one turn at a time, and
each turn's tokens are the part the template added for it. A turn to train on is split into the header the template
writes before an answer (what ``add_generation_prompt`` gives, not an answer) and the answer itself. This works for
any template that renders a conversation as its first turns' rendering followed by more text. A template that
rewrites earlier turns when more come (some hide an earlier turn's reasoning) cannot be split this way and is refused
(docs/data.md, "Chat data").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.data.records import ChatTurn, DataError


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _render(tokenizer, turns: Sequence[ChatTurn], generation_prompt: bool = False) -> str:
    messages = [{"role": role, "content": content} for role, content, _ in turns]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def chat_prompt(tokenizer, prompt: str) -> str:
    """A single user turn and the header of the answer that follows: what a chat model is asked at evaluation."""
    return _render(tokenizer, [("user", prompt, False)], generation_prompt=True)


def render_chat(tokenizer, turns: Sequence[ChatTurn], origin: str = "") -> list[tuple[str, bool]]:
    """The conversation as text segments ``(text, is_answer)`` that concatenate to the template's full rendering
    (its trailing whitespace after the last answer cut, so the document ends on the template's end-of-turn)."""
    if not has_chat_template(tokenizer):
        raise DataError(
            f"{type(tokenizer).__name__} has no chat template, which conversations (data.messages_field, or a "
            "messages column) and data.chat_template need: use a chat (Instruct) model's tokenizer, or give Q&A as "
            "prompt/completion strings with data.chat_template: false"
        )
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, (role, _, trained) in enumerate(turns):
        upto = _render(tokenizer, turns[: i + 1])
        if trained:
            head = _render(tokenizer, turns[:i], generation_prompt=True)
            _check_prefix(done, head, origin)
            segments.append((head[len(done) :], False))
            done = head
        _check_prefix(done, upto, origin)
        segments.append((upto[len(done) :], trained and role == "assistant"))
        done = upto
    if segments and segments[-1][1]:
        segments[-1] = (segments[-1][0].rstrip(), True)
    return [(text, answer) for text, answer in segments if text]


def _check_prefix(before: str, after: str, origin: str) -> None:
    if not after.startswith(before):
        raise DataError(
            f"{origin or 'a conversation'}: the tokenizer's chat template does not render a conversation as its "
            "earlier turns followed by the new one (it rewrites earlier turns), so answer tokens cannot be marked"
        )


def tokenize_chat(tokenizer, turns: Sequence[ChatTurn], origin: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Token ids (int32) and answer mask (bool) of a conversation, EOS-terminated (the EOS counts as answer when the
    conversation ends on an answer)."""
    ids: list[int] = []
    mask: list[bool] = []
    for text, answer in render_chat(tokenizer, turns, origin):
        part = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += part
        mask += [answer] * len(part)
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids.append(tokenizer.eos_token_id)
        mask.append(bool(mask and mask[-1]))
    return np.asarray(ids, dtype=np.int32), np.asarray(mask, dtype=bool)
