"""Settings of data preparation (``data`` in params.yaml) and of the base model (``model``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.settings import Settings

Split = Literal["train", "val", "test"]
DataSourceName = Literal["stdlib-code", "humaneval", "mbpp", "dataframebench", "trans-de-en", "jsonl", "hf"]
QA_SOURCES = ("humaneval", "dataframebench", "trans-de-en")
Dtype = Literal["float32", "bfloat16"]


class DataConfig(Settings):
    source: DataSourceName = Field("stdlib-code", description="where documents come from")
    paths: list[str] = Field(default_factory=list, description="jsonl: the files to read")
    text_field: str = Field("text", description="jsonl/hf: field holding a plain document")
    prompt_field: str | None = Field(None, description="jsonl/hf: field holding a prompt (Q&A, translation source)")
    completion_field: str | None = Field(None, description="jsonl/hf: field holding the answer / translation")
    tests_field: str | None = Field(
        None, description="jsonl/hf Q&A: field holding HumanEval-style tests (code defining check(candidate))"
    )
    entry_point_field: str | None = Field(None, description="jsonl/hf Q&A: field naming the function the tests call")
    messages_field: str | None = Field(
        None,
        description="jsonl/hf: field holding a conversation ([{role, content}, ...]; the assistant turns are the "
        "answers), rendered with the tokenizer's chat template",
    )
    chat_template: bool = Field(
        False,
        description="write Q&A as a user turn and an assistant answer with the tokenizer's chat template (for an "
        "Instruct model; the templates below still shape the texts inside the turns)",
    )
    hf_dataset: str | None = Field(None, description="hf: a hub dataset id or a local dataset folder")
    hf_split: str = "train"
    prompt_template: str = Field("{prompt}", description="how a prompt is written before its answer")
    completion_template: str = Field("{completion}", description="how an answer is written after its prompt")
    translation_direction: Literal["de-en", "en-de"] = "de-en"
    seq_len: int = Field(264, ge=8, description="chunk length L in tokens")
    val_fraction: float = Field(0.05, ge=0, lt=1)
    test_fraction: float = Field(0.0, ge=0, lt=1)
    max_chunks: dict[Split, int | None] = Field(
        default_factory=lambda: {"train": 64, "val": 16, "test": 16},
        description="chunks kept per split (null = all); documents are taken in hash order",
    )
    on_bad_record: Literal["fail", "skip"] = "fail"
    split_salt: str = Field("", description="change to draw a different (still deterministic) split")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"data.val_fraction + data.test_fraction = {self.val_fraction + self.test_fraction} leaves no "
                "training data; keep their sum below 1"
            )
        if self.source == "jsonl" and not self.paths:
            raise ValueError("data.source='jsonl' needs data.paths: a list of .jsonl files")
        if self.source == "hf" and not self.hf_dataset:
            raise ValueError("data.source='hf' needs data.hf_dataset: a hub id or a local dataset folder")
        if (self.prompt_field is None) != (self.completion_field is None):
            raise ValueError("data.prompt_field and data.completion_field must be given together")
        if (self.tests_field is None) != (self.entry_point_field is None):
            raise ValueError("data.tests_field and data.entry_point_field must be given together")
        if self.messages_field is not None and (self.prompt_field or self.source not in ("jsonl", "hf")):
            raise ValueError(
                "data.messages_field is for jsonl/hf conversations; it cannot be combined with data.prompt_field"
            )
        if self.tests_field is not None and self.prompt_field is None:
            raise ValueError("data.tests_field needs Q&A data: set data.prompt_field and data.completion_field")
        if "{prompt}" not in self.prompt_template:
            raise ValueError(f"data.prompt_template={self.prompt_template!r} must contain '{{prompt}}'")
        if "{completion}" not in self.completion_template:
            raise ValueError(f"data.completion_template={self.completion_template!r} must contain '{{completion}}'")
        for split, cap in self.max_chunks.items():
            if cap is not None and cap < 0:
                raise ValueError(f"data.max_chunks.{split}={cap} must be >= 0 or null")
        return self

    @property
    def is_qa(self) -> bool:
        return self.source in QA_SOURCES or self.prompt_field is not None or self.messages_field is not None

    @property
    def uses_chat_template(self) -> bool:
        return self.chat_template or self.messages_field is not None

    @property
    def has_tests(self) -> bool:
        """Each document is a function-call task with unit tests (what the RLVR unit-test reward needs)."""
        return self.source == "humaneval" or self.tests_field is not None


class ModelConfig(Settings):
    base: str = Field(
        "smollm2-135m",
        description="'smollm2-135m' (offline package), 'tiny:llama' / 'tiny:qwen2' (random, for tests), "
        "a local model folder, or a hub id",
    )
    dtype: Dtype = Field("float32", description="dtype the base model is stored in")
