"""Settings of the evaluate stage (``eval`` in params.yaml): held-out chunks, code tasks, translation, decoding."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.data.config import Dtype, Split
from components.engine.layout import StridedLayout
from components.method.config import DocumentMasking, FeaturesConfig
from components.settings import Settings

CodeTask = Literal["humaneval", "mbpp", "dataframebench"]


class DecodingConfig(Settings):
    samples: int = Field(1, ge=1, description="completions per prompt (n of pass@k)")
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1, description="prompts per generate call")
    seed: int = Field(0, ge=0, lt=2**32)

    @model_validator(mode="after")
    def _check(self) -> DecodingConfig:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"samples={self.samples} at temperature 0 would all be the same greedy completion")
        return self


class CodeEvalConfig(Settings):
    tasks: list[CodeTask] = Field(
        default_factory=lambda: ["humaneval"], description="humaneval | mbpp | dataframebench"
    )
    max_problems: int | None = Field(40, ge=1, description="first N problems of each task; null = all")
    decoding: DecodingConfig = DecodingConfig()
    ks: list[int] = Field(default_factory=lambda: [1], description="pass@k reported for each k (<= decoding.samples)")
    timeout_s: float = Field(10.0, gt=0, description="wall-clock limit per test run in the sandbox")
    memory_mb: int = Field(2048, ge=256, description="address-space limit per test run")
    workers: int = Field(2, ge=1, description="test runs at once")
    require_namespaces: bool = Field(
        True,
        description="refuse to run generated code where user/net/pid namespaces are unavailable; false accepts a "
        "weaker sandbox in which the network and the host's process list stay reachable",
    )


class TranslationEvalConfig(Settings):
    enabled: bool | Literal["auto"] = Field("auto", description="auto: on when data.source is a translation source")
    split: Split = "test"
    max_pairs: int | None = Field(200, ge=1)
    decoding: DecodingConfig = DecodingConfig(max_new_tokens=96)


class EvalConfig(Settings):
    models: list[str] | None = Field(
        None, description="'base' and/or trained methods to evaluate; null = base and every method trained"
    )
    split: Split = Field("val", description="held-out chunks for CE and feature matching (must be cached)")
    max_chunks: int | None = Field(16, ge=1)
    feature_samples: int = Field(4, ge=1, description="samples per block for feature matching (best-of-k)")
    temperature: float = Field(0.6, gt=0, description="sampling temperature for feature matching")
    seed: int = Field(0, ge=0, lt=2**32)
    dtype: Dtype | Literal["auto"] = Field(
        "auto",
        description="weights of the models scored; auto: bfloat16 on GPU (no master weights to keep), float32 on CPU",
    )
    code: CodeEvalConfig = CodeEvalConfig()
    translation: TranslationEvalConfig = TranslationEvalConfig()


class EvalPlan(DocumentMasking):
    """Everything the evaluate stage needs to know to score any model, composed from params.yaml's sections."""

    eval: EvalConfig
    layout: StridedLayout
    features: FeaturesConfig
    translation: bool = Field(description="score translation (BLEU, chrF) on held-out pairs")
    prompt_template: str = "{prompt}"
    chat_template: bool = Field(False, description="prompts are asked as a user turn in the tokenizer's chat template")
