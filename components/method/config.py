"""Settings of the EBFT method: how block features are read, rewards, the loss, one EBFT step, the features stage.

params.yaml spreads them over three sections; each field is declared once, here, and the params schema inherits it:
``layout`` holds the block geometry (components/engine/layout.py) and ``document_masking``; ``features`` holds
``FeaturesConfig``; ``train`` holds the trainer's settings and ``EBFTOptions``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.data.config import Dtype, Split
from components.engine.config import ForwardMode, SamplingConfig
from components.engine.layout import StridedLayout
from components.settings import Settings

LayerChoice = Literal["last", "mean", "middle", "quartiles"]
Whitening = Literal["sample", "feature", "none"]
KLEstimator = Literal["k2", "k3"]


class FeatureConfig(Settings):
    """How block features are read from the feature network (docs/method.md §3)."""

    layers: LayerChoice | list[int] = Field(
        "quartiles",
        description="hidden states used: 'quartiles' = layers at 25/50/75% depth concatenated (paper default), "
        "'last', 'middle' (average of hidden states n//2 and n//2+1), 'mean' (average of the n layers' outputs, "
        "embeddings excluded) or explicit indices, concatenated (0 = embeddings, -1 = final normed state)",
    )
    token_norm: Literal["joint", "per_layer", "none"] = Field(
        "joint", description="per-token L2 normalisation: over the concatenated layers, each layer, or none"
    )
    pooling: Literal["last_token", "mean", "concat", "token"] = Field(
        "last_token",
        description="over a block's G tokens: last token, mean, concatenation, or keep per-token vectors",
    )


class FeaturesConfig(FeatureConfig):
    """The features stage: which network, in which dtype, over which splits."""

    network: str = Field("base", description="'base' = frozen copy of the base model, or a local folder / hub id")
    dtype: Dtype | Literal["auto"] = Field(
        "auto",
        description="weights of the frozen network; auto: bfloat16 on GPU, float32 on CPU (the features "
        "are always computed in this dtype, in the cache, in training and in evaluation)",
    )
    batch_size: int = Field(8, ge=1, description="chunks per forward when building the cache")
    splits: list[Split] = Field(default_factory=lambda: ["train", "val"], description="splits to cache")

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(**self.model_dump(include=set(FeatureConfig.model_fields)))


class RewardConfig(Settings):
    alignment_coef: float = Field(1.0, ge=0, description="α: weight of alignment with the ground truth")
    diversity_coef: float = Field(0.5, ge=0, description="β: weight of the diversity penalty (paper: 0, 0.5, 1)")
    whitening: Whitening = Field("sample", description="'sample' (paper), 'feature' or 'none'")
    advantage_norm: Literal["none", "group"] = Field(
        "none", description="'group' divides advantages by the std of rewards among the n samples"
    )


class LossConfig(Settings):
    rl_coef: float = Field(1.0, ge=0, description="weight of the policy-gradient term")
    ce_coef: float = Field(0.03, ge=0, description="γ: weight of cross-entropy on the ground truth (paper 0-0.1)")
    kl_coef: float = Field(0.0, ge=0, description="weight of KL to a frozen reference; 0 = off (paper)")
    kl_estimator: KLEstimator = Field(
        "k2",
        description="'k2' (the authors': ½·log²(p/p_ref) clamped to 10; its gradient is that of KL(p || p_ref)) or "
        "'k3' (r - 1 - log r; as a loss its gradient is that of the reverse KL(p_ref || p))",
    )


class RewardSandboxConfig(Settings):
    """Where the unit-test reward runs sampled answers: the evaluation's sandbox (docs/evaluation.md), with its own
    limits because training runs many short tests."""

    timeout_s: float = Field(5.0, gt=0, description="wall-clock limit per answer's test run")
    memory_mb: int = Field(1024, ge=256, description="memory limit per test run")
    workers: int = Field(2, ge=1, description="test runs at once")
    require_namespaces: bool = Field(
        True, description="refuse to run sampled code without user/net/pid namespaces (false: a weaker sandbox)"
    )


class RLVRConfig(Settings):
    """The RLVR baseline (docs/method.md §6): whole answers to the training data's prompts, scored against their
    references. It shares ``sampling`` (n samples, temperature) with EBFT, so both see equal rollout budgets."""

    reward: Literal["chrf", "exact_match", "unit_tests"] = Field(
        "chrf",
        description="'chrf' (sacrebleu chrF / 100 against the reference answer), 'exact_match' (0/1), or "
        "'unit_tests' (1 if the answer passes its task's tests in the sandbox, else 0; needs function-call tasks)",
    )
    max_new_tokens: int = Field(64, ge=1, description="longest sampled answer")
    prompts_per_chunk: int = Field(1, ge=1, description="complete Q&A documents taken from each training chunk")
    ce_coef: float = Field(0.0, ge=0, description="weight of cross-entropy on the chunks (0: pure RLVR)")
    kl_coef: float = Field(0.0, ge=0, description="weight of KL to the frozen base model (loss.kl_estimator)")
    sandbox: RewardSandboxConfig = RewardSandboxConfig()


class DocumentMasking(Settings):
    document_masking: bool = Field(False, description="packed documents never see each other")


class EBFTOptions(Settings):
    """The part of an EBFT step's settings that params.yaml keeps under ``train``."""

    sampling: SamplingConfig = SamplingConfig()
    rewards: RewardConfig = RewardConfig()
    loss: LossConfig = LossConfig()
    qa_masking: bool = Field(False, description="rewards and CE only on answer tokens")
    forward_mode: ForwardMode = Field(
        "cached",
        description="'cached': the chunk once per chunk (L + n*NB*G positions); 'flex': cached with FlexAttention "
        "block masks (GPU kernels that skip masked tiles); 'dense': one sequence per sample (n*(L + NB*G)), the "
        "reference the oracle tests compare with",
    )
    rlvr: RLVRConfig = RLVRConfig()


class EBFTStepConfig(EBFTOptions, DocumentMasking):
    """Everything one EBFT step needs; each part is validated on its own and the combination here."""

    layout: StridedLayout
    features: FeatureConfig = FeatureConfig()
    logit_chunk_size: int = Field(1024, ge=1, description="positions per chunk of the vocabulary projection")

    @model_validator(mode="after")
    def _check_combination(self) -> EBFTStepConfig:
        n = self.sampling.n_samples
        if self.loss.rl_coef > 0 and n < 2:
            raise ValueError(f"sampling.n_samples={n}: the RLOO baseline needs at least 2 samples per chunk")
        if self.loss.rl_coef > 0 and self.rewards.diversity_coef > 0 and n < 3:
            raise ValueError(
                f"sampling.n_samples={n} with rewards.diversity_coef={self.rewards.diversity_coef}: the diversity "
                "baseline needs n_samples >= 3; raise n_samples or set diversity_coef to 0"
            )
        return self
