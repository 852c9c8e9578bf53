"""Settings of run tracking (``tracking`` in params.yaml) and of the registry and its gate (``registry``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from components.release.promotion.gate import GateConfig
from components.training.config import Method


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackingConfig(_Settings):
    uri: str | None = Field(None, description="MLflow tracking URI; null: $MLFLOW_TRACKING_URI or ./mlruns.db")
    experiment: str = Field("ebft", min_length=1)
    log_model: bool = Field(True, description="log trained models as MLflow models (they load back and generate)")


class RegistryConfig(_Settings):
    enabled: bool = Field(True, description="register the trained model and run the promotion gate (pipeline flow)")
    name: str = Field("ebft-model", min_length=1, description="registered model name: models:/<name>@champion")
    method: Method | None = Field(
        None, description="which trained method is registered and gated; null = ebft if trained, else sft"
    )
    gate: GateConfig = GateConfig()
