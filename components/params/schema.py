"""params.yaml: every knob of the pipeline in one file, grouped by stage, validated on load.

A wrong type, an unknown key or an out-of-range value stops the run before any work, with a message that names the
key, the value and what is allowed. The strided geometry has its own group because three stages share it; its chunk
length is ``data.seq_len`` (packing owns it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.engine.forward import ForwardMode
from components.engine.layout import StridedLayout
from components.engine.token_sampling import SamplingConfig
from components.evaluation.code_tasks import CodeTask
from components.evaluation.decoding import DecodingConfig
from components.method.ebft_step import EBFTConfig
from components.method.feature_network import FeatureConfig
from components.method.loss import LossConfig
from components.method.rewards import RewardConfig
from components.release.promotion.gate import GateConfig
from components.release.promotion.scores import CODE
from components.training.config import TrainerConfig

Split = Literal["train", "val", "test"]
DataSourceName = Literal["stdlib-code", "humaneval", "mbpp", "dataframebench", "trans-de-en", "jsonl", "hf"]
QA_SOURCES = ("humaneval", "dataframebench", "trans-de-en")


class ParamsError(ValueError):
    """params.yaml does not validate; the message lists every problem."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Group):
    source: DataSourceName = Field("stdlib-code", description="where documents come from")
    paths: list[str] = Field(default_factory=list, description="jsonl: the files to read")
    text_field: str = Field("text", description="jsonl/hf: field holding a plain document")
    prompt_field: str | None = Field(None, description="jsonl/hf: field holding a prompt (Q&A, translation source)")
    completion_field: str | None = Field(None, description="jsonl/hf: field holding the answer / translation")
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
    def _check(self) -> DataParams:
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
        return self.source in QA_SOURCES or self.prompt_field is not None


class LayoutParams(_Group):
    """Strided block-parallel geometry (EBFT spec §2); L is data.seq_len."""

    context: int = Field(8, ge=1, description="C: tokens before the first block")
    stride: int = Field(8, ge=1, description="s: distance between block anchors")
    block_len: int = Field(8, ge=1, description="G: tokens generated per block")
    document_masking: bool = Field(False, description="packed documents never see each other")


class ModelParams(_Group):
    base: str = Field(
        "smollm2-135m",
        description="'smollm2-135m' (offline package), 'tiny:llama' / 'tiny:qwen2' (random, for tests), "
        "a local model folder, or a hub id",
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="dtype the base model is stored in")


class FeatureParams(FeatureConfig):
    network: str = Field("base", description="'base' = frozen copy of the base model, or a local folder / hub id")
    dtype: Literal["float32", "bfloat16"] = "float32"
    batch_size: int = Field(8, ge=1, description="chunks per forward when building the cache")
    splits: list[Split] = Field(default_factory=lambda: ["train", "val"], description="splits to cache")

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(**self.model_dump(include=set(FeatureConfig.model_fields)))


class TrainParams(TrainerConfig):
    sampling: SamplingConfig = SamplingConfig()
    rewards: RewardConfig = RewardConfig()
    loss: LossConfig = LossConfig()
    qa_masking: bool = Field(False, description="rewards and CE only on answer tokens")
    forward_mode: ForwardMode = "cached"


class CodeEvalParams(_Group):
    tasks: list[CodeTask] = Field(
        default_factory=lambda: ["humaneval"], description="humaneval | mbpp | dataframebench"
    )
    max_problems: int | None = Field(40, ge=1, description="first N problems of each task; null = all")
    decoding: DecodingConfig = DecodingConfig()
    ks: list[int] = Field(default_factory=lambda: [1], description="pass@k reported for each k (<= decoding.samples)")
    timeout_s: float = Field(10.0, gt=0, description="wall-clock limit per test run in the sandbox")
    memory_mb: int = Field(2048, ge=256, description="address-space limit per test run")
    workers: int = Field(2, ge=1, description="test runs at once")


class TranslationEvalParams(_Group):
    enabled: bool | Literal["auto"] = Field("auto", description="auto: on when data.source is a translation source")
    split: Split = "test"
    max_pairs: int | None = Field(200, ge=1)
    decoding: DecodingConfig = DecodingConfig(max_new_tokens=96)


class EvalParams(_Group):
    models: list[str] | None = Field(
        None, description="'base' and/or trained methods to evaluate; null = base and every method trained"
    )
    split: Split = Field("val", description="held-out chunks for CE and feature matching (must be cached)")
    max_chunks: int | None = Field(16, ge=1)
    feature_samples: int = Field(4, ge=1, description="samples per block for feature matching (best-of-k)")
    temperature: float = Field(0.6, gt=0, description="sampling temperature for feature matching")
    seed: int = 0
    code: CodeEvalParams = CodeEvalParams()
    translation: TranslationEvalParams = TranslationEvalParams()


class TrackingParams(_Group):
    uri: str | None = Field(None, description="MLflow tracking URI; null: $MLFLOW_TRACKING_URI or ./mlruns.db")
    experiment: str = Field("ebft", min_length=1)
    log_model: bool = Field(True, description="log trained models as MLflow models (they load back and generate)")


class RegistryParams(_Group):
    enabled: bool = Field(True, description="register the trained model and run the promotion gate (pipeline flow)")
    name: str = Field("ebft-model", min_length=1, description="registered model name: models:/<name>@champion")
    method: Literal["ebft", "sft"] | None = Field(
        None, description="which trained method is registered and gated; null = ebft if trained, else sft"
    )
    gate: GateConfig = GateConfig()


class Params(_Group):
    data: DataParams = DataParams()
    layout: LayoutParams = LayoutParams()
    model: ModelParams = ModelParams()
    features: FeatureParams = FeatureParams()
    train: TrainParams = TrainParams()
    tracking: TrackingParams = TrackingParams()
    eval: EvalParams = EvalParams()
    registry: RegistryParams = RegistryParams()

    @model_validator(mode="after")
    def _check(self) -> Params:
        try:
            self.ebft_config()
        except ValidationError as err:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
            raise ValueError(f"data.seq_len, layout.* and train.* do not fit together: {problems}") from None
        train, n = self.train, self.train.sampling.n_samples
        if "ebft" in train.methods and train.rollouts_per_step % n:
            raise ValueError(
                f"train.rollouts_per_step={train.rollouts_per_step} is not divisible by train.sampling.n_samples={n}; "
                f"use a multiple of {n} (chunks per step = rollouts / n)"
            )
        chunks = self.chunks_per_step
        if chunks % train.num_processes:
            raise ValueError(
                f"{chunks} chunks per step (rollouts_per_step / n_samples) cannot be split over "
                f"train.num_processes={train.num_processes}; make it a multiple of the process count"
            )
        if (chunks // train.num_processes) % train.micro_batch_chunks:
            raise ValueError(
                f"{chunks // train.num_processes} chunks per process per step are not divisible by "
                f"train.micro_batch_chunks={train.micro_batch_chunks}"
            )
        if train.gradient_checkpointing and train.forward_mode == "cached":
            raise ValueError(
                "train.gradient_checkpointing needs train.forward_mode: dense (HF models drop the KV cache that the "
                "cached mode relies on while checkpointing)"
            )
        unknown = [m for m in self.evaluated_models if m != "base" and m not in train.methods]
        if unknown:
            raise ValueError(
                f"eval.models lists {unknown}, which train.methods ({train.methods}) does not train; "
                "allowed: 'base' and the trained methods"
            )
        if self.eval.split not in self.features.splits:
            raise ValueError(
                f"eval.split={self.eval.split!r} is not in features.splits={self.features.splits}: "
                "feature matching needs that split's cached ground-truth features"
            )
        too_big = [k for k in self.eval.code.ks if k > self.eval.code.decoding.samples]
        if too_big:
            raise ValueError(
                f"eval.code.ks {too_big} exceed eval.code.decoding.samples={self.eval.code.decoding.samples}: "
                "pass@k needs at least k samples per problem"
            )
        self._check_registry()
        if self.train.qa_masking and not self.data.is_qa:
            raise ValueError(
                f"train.qa_masking is on but data.source={self.data.source!r} has no answers; "
                "use a Q&A source or set prompt_field/completion_field"
            )
        return self

    def _check_registry(self) -> None:
        reg = self.registry
        if not reg.enabled:
            return
        method = self.registered_method
        if method not in self.train.methods or method not in self.evaluated_models:
            raise ValueError(
                f"registry.method={method!r} must be trained (train.methods={self.train.methods}) and evaluated "
                f"(eval.models={self.evaluated_models}): the gate compares its per-example scores"
            )
        for name in [reg.gate.primary, *reg.gate.guards]:
            code = CODE.match(name)
            if code and (code[1] not in self.eval.code.tasks or int(code[2]) not in self.eval.code.ks):
                raise ValueError(
                    f"registry.gate metric {name!r} needs eval.code.tasks to include {code[1]!r} and eval.code.ks "
                    f"to include {code[2]} (now {self.eval.code.tasks}, {self.eval.code.ks})"
                )
            if name.startswith("translation_") and not self.evaluates_translation:
                raise ValueError(f"registry.gate metric {name!r} needs translation evaluation (eval.translation)")
            if name == "val_answer_ce" and not self.data.is_qa:
                raise ValueError("registry.gate metric 'val_answer_ce' needs a Q&A data source (answer tokens)")

    @property
    def evaluated_models(self) -> list[str]:
        return self.eval.models if self.eval.models is not None else ["base", *self.train.methods]

    @property
    def registered_method(self) -> str:
        return self.registry.method or ("ebft" if "ebft" in self.train.methods else self.train.methods[0])

    @property
    def evaluates_translation(self) -> bool:
        enabled = self.eval.translation.enabled
        return self.data.source == "trans-de-en" if enabled == "auto" else enabled

    @property
    def chunks_per_step(self) -> int:
        """Chunks in one optimizer step (all processes): the EBFT rollouts over n samples; SFT uses the same chunks."""
        return max(1, self.train.rollouts_per_step // self.train.sampling.n_samples)

    def strided_layout(self) -> StridedLayout:
        lay = self.layout
        return StridedLayout(seq_len=self.data.seq_len, context=lay.context, stride=lay.stride, block_len=lay.block_len)

    def ebft_config(self) -> EBFTConfig:
        return EBFTConfig(
            layout=self.strided_layout(),
            sampling=self.train.sampling,
            features=self.features.feature_config(),
            rewards=self.train.rewards,
            loss=self.train.loss,
            document_masking=self.layout.document_masking,
            qa_masking=self.train.qa_masking,
            forward_mode=self.train.forward_mode,
        )


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` on top of ``base``, recursively for nested mappings."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate_params(raw: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(f"{source}: invalid parameters\n" + "\n".join(_describe(e) for e in err.errors())) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found (run from the project root or pass --params)")
    return validate_params(yaml.safe_load(path.read_text()), str(path))


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(error["loc"][:-1]))
        return f"  - {loc}: unknown key (value {value!r}); allowed keys here: {allowed}"
    message = error["msg"].removeprefix("Value error, ")
    if not loc:
        return f"  - {message}"
    return f"  - {loc} = {value!r}: {message}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Params
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))
