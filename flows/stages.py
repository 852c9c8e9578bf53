"""One Prefect flow per stage, for running a single stage under Prefect (retries, run history, UI) outside the
pipeline. Each is a thin wrapper over the same plain function that the DVC stage command runs, so a stage behaves the
same whichever way it is started. The pipeline flow (flows/pipeline.py) runs stages through DVC instead, so that
unchanged stages are skipped."""

from __future__ import annotations

from prefect import flow

from flows import base_model, evaluate, features, prepare, train


@flow(name="ebft-base-model", log_prints=True)
def base_model_flow(params_path: str = "params.yaml") -> dict:
    return base_model.run(params_path=params_path)


@flow(name="ebft-prepare", log_prints=True)
def prepare_flow(params_path: str = "params.yaml") -> dict:
    return prepare.run(params_path=params_path)


@flow(name="ebft-features", log_prints=True)
def features_flow(params_path: str = "params.yaml") -> dict:
    return features.run(params_path=params_path)


@flow(name="ebft-train", log_prints=True)
def train_flow(params_path: str = "params.yaml") -> dict:
    return train.run(params_path=params_path)


@flow(name="ebft-evaluate", log_prints=True)
def evaluate_flow(params_path: str = "params.yaml") -> dict:
    return evaluate.run(params_path=params_path)
