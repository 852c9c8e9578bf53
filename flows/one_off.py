"""A one-off training run over your data and model (``ebft train``): the pipeline's own stages (base_model, prepare,
features, train and, with ``--evaluate``, evaluate), in a run folder of their own, without DVC or the registry.

The run folder is laid out as a project: its params.yaml (your project's params.yaml or the defaults, a preset, then
``--set`` overrides, validated before anything is written), ``inputs/data`` and ``inputs/models`` linking to your
data and model, and the stages' outputs beside them (models/trained/<method>/, metrics/, eval/). MLflow records go to
``$MLFLOW_TRACKING_URI`` or the run folder's mlruns.db. To make such a run reproducible and scheduled, put the same
data under the project's inputs/ and use ``make run`` (README, "Your own data and model").
"""

from __future__ import annotations

from contextlib import chdir
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from components.data.atomic_io import atomic_write_text
from components.params.loading import ParamsError, deep_merge, read_params_file, validate_params
from components.params.overrides import nested
from components.params.presets import load_preset

DEFAULT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def run_params(
    data: Path, model: str | None, overrides: dict[str, Any], params_file: Path | None, preset: str | None
) -> dict[str, Any]:
    """The run's params as it will write them (validated): base params, preset, your data and model, overrides."""
    source = params_file or (Path("params.yaml") if Path("params.yaml").exists() else DEFAULT_PARAMS)
    raw = read_params_file(source)
    if preset:
        raw = deep_merge(raw, load_preset(preset))
    if data.is_dir() and any((data / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):  # save_to_disk
        raw = deep_merge(raw, {"data": {"source": "hf", "hf_dataset": f"inputs/data/{data.name}"}})
    else:
        raw = deep_merge(raw, {"data": {"source": "jsonl", "paths": [f"inputs/data/{data.name}"]}})
    if model is not None:
        raw = deep_merge(
            raw, {"model": {"base": f"inputs/models/{Path(model).name}" if Path(model).is_dir() else model}}
        )
    raw = deep_merge(raw, nested(overrides))
    validate_params(raw, f"{source} with the run's data, model and overrides")
    return raw


def one_off(
    data: Path,
    model: str | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    out: Path | None = None,
    params_file: Path | None = None,
    preset: str | None = None,
    run_evaluation: bool = False,
) -> dict:
    """Train on ``data`` (a .jsonl file, a folder of them, or a HF ``save_to_disk`` folder) from ``model`` (a local
    folder, a hub id, smollm2-135m, tiny:llama; default: the params' model.base). Returns the train stage's summary
    (and ``eval`` with ``run_evaluation``)."""
    data = Path(data).expanduser().resolve()
    if not data.exists():
        raise FileNotFoundError(f"--data {data}: no such file or folder")
    if model is not None and model.startswith((".", "/", "~")) and not Path(model).expanduser().is_dir():
        raise FileNotFoundError(f"--model {model}: no such folder (a local model folder, a hub id or smollm2-135m)")
    raw = run_params(data, model, overrides or {}, params_file, preset)  # refused here: nothing written yet
    out = Path(out or f"runs/train-{datetime.now(UTC):%Y%m%d-%H%M%S}").resolve()
    if (out / "params.yaml").exists():
        raise ParamsError(f"--out {out} already holds a run (params.yaml); choose another folder")
    for area in ("data", "models"):
        (out / "inputs" / area).mkdir(parents=True, exist_ok=True)
    (out / "inputs/data" / data.name).symlink_to(data)
    if model is not None and Path(model).expanduser().is_dir():
        (out / "inputs/models" / Path(model).name).symlink_to(Path(model).expanduser().resolve())
    atomic_write_text(out / "params.yaml", "# written by `ebft train`\n" + yaml.safe_dump(raw, sort_keys=False))
    print(f"ebft train: run folder {out}")
    from flows import base_model, evaluate, features, prepare, train  # torch and transformers: after the checks

    with chdir(out):
        base_model.run()
        prepare.run()
        if "ebft" in raw["train"]["methods"] or run_evaluation:
            features.run()
        record = train.run()
        if run_evaluation:
            record = {**record, "eval": evaluate.run()}
    models = ", ".join(str(out / "models/trained" / m) for m in raw["train"]["methods"])
    print(f"ebft train: done; models in {models}; metrics in {out / 'metrics'}")
    return record
