"""Settings of run tracking (``tracking`` in params.yaml) and of the registry and its promotion gate (``registry``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from components.release.promotion.metrics import gate_metric
from components.settings import Settings
from components.training.config import Method


class TrackingConfig(Settings):
    uri: str | None = Field(None, description="MLflow tracking URI; null: $MLFLOW_TRACKING_URI or ./mlruns.db")
    experiment: str = Field("ebft", min_length=1)
    log_model: bool = Field(True, description="log trained models as MLflow models (they load back and generate)")


class GateConfig(Settings):
    """When the challenger replaces the champion (components/release/promotion/gate.py decides)."""

    primary: str = Field("fm_alignment", description="metric that must improve significantly")
    guards: dict[str, float] = Field(
        default_factory=lambda: {"val_ce": 0.05},
        description="metric -> largest tolerated regression (in the metric's units)",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1)
    resamples: int = Field(2000, ge=100)
    min_examples: int = Field(8, ge=2, description="fewer paired examples than this: no promotion")
    min_delta: float = Field(0.0, ge=0, description="the improvement's lower bound must exceed this")
    seed: int = Field(0, ge=0, lt=2**32, description="seed of the bootstrap resampling")

    @field_validator("primary")
    @classmethod
    def _known_primary(cls, name: str) -> str:
        gate_metric(name)
        return name

    @field_validator("guards")
    @classmethod
    def _known_guards(cls, guards: dict[str, float]) -> dict[str, float]:
        for name, tolerance in guards.items():
            gate_metric(name)
            if tolerance < 0:
                raise ValueError(f"guard {name!r}: tolerance {tolerance} must be >= 0")
        return guards


class RegistryConfig(Settings):
    enabled: bool = Field(True, description="register the trained model and run the promotion gate (pipeline flow)")
    name: str = Field("ebft-model", min_length=1, description="registered model name: models:/<name>@champion")
    method: Method | None = Field(
        None, description="which trained method is registered and gated; null = ebft if trained, else sft"
    )
    gate: GateConfig = GateConfig()
