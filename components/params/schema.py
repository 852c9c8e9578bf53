"""params.yaml: every knob of the pipeline in one file, grouped by stage, validated on load.

Each section is a room's own settings (components/<room>/config.py and the engine's layout); this module only composes
them and checks what spans sections. A wrong type, an unknown key or an out-of-range value stops the run before any
work, with a message that names the key, the value and what is allowed. The strided geometry has its own section
because three stages share it; its chunk length is ``data.seq_len`` (packing owns it).
"""

from __future__ import annotations

from pydantic import ValidationError, model_validator

from components.data.config import DataConfig, ModelConfig
from components.engine.layout import BlockGeometry, StridedLayout
from components.evaluation.config import EvalConfig, EvalPlan
from components.method.config import DocumentMasking, EBFTOptions, EBFTStepConfig, FeaturesConfig
from components.release.config import RegistryConfig, TrackingConfig
from components.release.promotion.metrics import CODE
from components.settings import Settings
from components.training.config import RESUME_ONLY, TrainerConfig


class LayoutParams(DocumentMasking, BlockGeometry):
    """Strided block-parallel geometry (docs/method.md §2) and document masking; L is data.seq_len."""


class TrainParams(EBFTOptions, TrainerConfig):
    """The trainer's settings and the EBFT step's sampling, rewards, loss and masking."""


class Params(Settings):
    data: DataConfig = DataConfig()
    layout: LayoutParams = LayoutParams()
    model: ModelConfig = ModelConfig()
    features: FeaturesConfig = FeaturesConfig()
    train: TrainParams = TrainParams()
    tracking: TrackingConfig = TrackingConfig()
    eval: EvalConfig = EvalConfig()
    registry: RegistryConfig = RegistryConfig()

    @model_validator(mode="after")
    def _check(self) -> Params:
        try:
            self.ebft_config()
        except ValidationError as err:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
            raise ValueError(f"data.seq_len, layout.* and train.* do not fit together: {problems}") from None
        self._check_training()
        self._check_evaluation()
        self._check_registry()
        if self.train.qa_masking and not self.data.is_qa:
            raise ValueError(
                f"train.qa_masking is on but data.source={self.data.source!r} has no answers; "
                "use a Q&A source or set prompt_field/completion_field"
            )
        return self

    def _check_training(self) -> None:
        train, n = self.train, self.train.sampling.n_samples
        if "rlvr" in train.methods and not self.data.is_qa:
            raise ValueError(
                f"train.methods has 'rlvr' but data.source={self.data.source!r} has no answers: the RLVR baseline "
                "rewards answers to prompts; use a Q&A source (e.g. trans-de-en) or set prompt_field/completion_field"
            )
        if "rlvr" in train.methods and train.rlvr.reward == "unit_tests":
            if not self.data.has_tests:
                raise ValueError(
                    f"train.rlvr.reward='unit_tests' but data.source={self.data.source!r} has no unit tests: use "
                    "function-call tasks (data.source: humaneval, or jsonl/hf with data.tests_field and "
                    "data.entry_point_field), or reward: chrf | exact_match"
                )
            if self.data.uses_chat_template:
                raise ValueError(
                    "train.rlvr.reward='unit_tests' runs the task's prompt followed by the sampled answer as one "
                    "program, which a chat-formatted answer is not: set data.chat_template: false"
                )
            if self.data.prompt_template != "{prompt}":
                raise ValueError(
                    f"train.rlvr.reward='unit_tests' runs the task's prompt followed by the sampled answer as one "
                    f"program, so data.prompt_template must be '{{prompt}}' (it is {self.data.prompt_template!r})"
                )
        if "rlvr" in train.methods and n < 2:
            raise ValueError(f"train.sampling.n_samples={n}: RLVR's leave-one-out baseline needs at least 2 samples")
        if {"ebft", "rlvr"} & set(train.methods) and train.rollouts_per_step % n:
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

    def _check_evaluation(self) -> None:
        train = self.train
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
        return self.train.chunks_per_step(self.train.sampling.n_samples)

    def training_settings(self) -> dict:
        """The settings that shape a training run (how often it checkpoints or logs samples does not)."""
        return {
            "train": self.train.model_dump(exclude=set(RESUME_ONLY)),
            "layout": self.layout.model_dump(),
            "features": self.features.model_dump(),
            "seq_len": self.data.seq_len,
        }

    def eval_plan(self) -> EvalPlan:
        return EvalPlan(
            eval=self.eval,
            layout=self.strided_layout(),
            features=self.features,
            document_masking=self.layout.document_masking,
            translation=self.evaluates_translation,
            prompt_template=self.data.prompt_template,
            chat_template=self.data.uses_chat_template,
        )

    def strided_layout(self) -> StridedLayout:
        lay = self.layout
        return StridedLayout(seq_len=self.data.seq_len, context=lay.context, stride=lay.stride, block_len=lay.block_len)

    def ebft_config(self) -> EBFTStepConfig:
        return EBFTStepConfig(
            layout=self.strided_layout(),
            features=self.features.feature_config(),
            document_masking=self.layout.document_masking,
            **{name: getattr(self.train, name) for name in EBFTOptions.model_fields},
        )
