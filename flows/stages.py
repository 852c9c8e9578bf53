"""One Prefect flow per stage, for running a single stage under Prefect (retries, run history, UI) outside the
pipeline. Each is a thin wrapper over the same plain function that the DVC stage command runs, so a stage behaves the
same whichever way it is started. The pipeline flow (flows/pipeline.py) runs stages through DVC instead, so that
unchanged stages are skipped."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from prefect import Flow, flow

from flows import base_model, evaluate, features, prepare, train


def stage_flow(stage: ModuleType) -> Flow[[str], dict]:
    """The Prefect flow ``ebft-<stage>`` over the stage's ``run``."""
    run: Callable[..., dict] = stage.run
    name = stage.__name__.rsplit(".", 1)[-1]

    def run_stage(params_path: str = "params.yaml") -> dict:
        return run(params_path=params_path)

    run_stage.__doc__ = stage.__doc__
    return flow(run_stage, name=f"ebft-{name.replace('_', '-')}", log_prints=True)


base_model_flow = stage_flow(base_model)
prepare_flow = stage_flow(prepare)
features_flow = stage_flow(features)
train_flow = stage_flow(train)
evaluate_flow = stage_flow(evaluate)
